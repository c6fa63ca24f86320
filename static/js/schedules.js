// The editor's Schedules panel: a saved script's schedules (cron + time zone + input), in
// words with their next three times, paused or resumed, deleted, and how the last due
// time went (its run, linked, or why none started). The server checks everything.
import { api, el, parseJson, showError, slug, toast } from "./api.js";
import { setStatus } from "./runs.js";
import { shortTime } from "./elapsed.js";
import { chosenHandler, handlerError, handlerSelect } from "./failure_handlers.js";

// A time on the schedule's own clock when the browser's reads otherwise: "09:00 in
// Asia/Kolkata" showed as "04:30 AM" in Berlin, with nothing saying whose clock that was.
function onItsClock(iso, zone) {
  const clock = { hour: "2-digit", minute: "2-digit" };
  const at = new Date(iso);
  let there;
  try { there = at.toLocaleTimeString([], { ...clock, timeZone: zone }); } catch { return []; }
  if (there === at.toLocaleTimeString([], clock)) return [];
  return [" ", el("span", { class: "muted schedule-zone-time", text: `(${there} ${zone})` })];
}

function timesCell(schedule) {
  if (!schedule.enabled) return [el("span", { class: "badge warn", text: "paused" })];
  if (!schedule.next_times.length) return [el("span", { class: "muted", text: "never" })];
  return schedule.next_times.map((iso) => el("div", {}, shortTime(iso), ...onItsClock(iso, schedule.timezone)));
}

// Why the last due time started no run: a badge, the reason in the server's few words (the
// Schedules page's: app/web/wording.py), and its words on what to do.
function skipNote(skip) {
  return [el("span", { class: "badge bad", text: "skipped" }),
    el("div", { class: "schedule-skip", title: skip.message ?? "", text: skip.words ?? skip.reason }),
    el("div", { class: "muted schedule-skip-message", text: skip.message ?? "" })];
}

function lastCell(schedule) {
  const { last_run: run, last_skip: skip } = schedule;
  if (run) {
    const badge = el("span", { class: "badge schedule-last-status" });
    setStatus(badge, run.status);
    // A due time skipped while the last run waits (previous_run_waiting) keeps that run as
    // the last one: its skip is said while the run still waits, not once it has started.
    const waiting = skip && run.status === "queued" ? skipNote(skip) : [];
    // Its failure is tried again (the schedule's retries): when.
    const retry = schedule.retry_at ? [el("div", { class: "muted schedule-retry-at" }, "retry at ", shortTime(schedule.retry_at))] : [];
    return [el("a", { href: `/f/${slug}/runs/${run.id}`, class: "schedule-last-run" }, shortTime(run.created_at)), " ", badge, ...waiting, ...retry];
  }
  if (skip) return skipNote(skip);
  // It fired, and its run was deleted since (retention, or someone deleted it).
  if (schedule.last_run_deleted) return [el("span", { class: "muted schedule-run-gone" }, shortTime(schedule.last_due_at), " (run no longer kept)")];
  return [el("span", { class: "muted", text: "not yet" })];
}

function row(schedule, reload) {
  const base = `/api/f/${slug}/scripts/${schedule.script_id}/schedules/${schedule.id}`;
  const toggle = el("button", { type: "button", class: "schedule-toggle", text: schedule.enabled ? "Pause" : "Resume" });
  const remove = el("button", { type: "button", class: "danger schedule-delete", text: "Delete" });
  toggle.addEventListener("click", async () => {
    try { await api("PATCH", base, { enabled: !schedule.enabled }); } catch (error) { toast(error.message, "error"); }
    reload(schedule.id);
  });
  // Retries of a failed run, changed in place (the delay stays; the API changes it too).
  const retries = el("select", { class: "schedule-retries-select", "aria-label": `Retries of a failed run of "${schedule.description}"` },
    ...["none", "1", "2", "3"].map((text, n) => el("option", { value: String(n), text, selected: n === schedule.retries })));
  retries.addEventListener("change", async () => {
    try { await api("PATCH", base, { retries: Number(retries.value) }); } catch (error) { toast(error.message, "error"); }
    reload(schedule.id, ".schedule-retries-select");
  });
  // The on-failure script, changed in place, and why its last run could not start.
  const onFailure = handlerSelect(schedule, { formSelect: "#schedule-on-failure", base,
    className: "schedule-on-failure-select", label: `When a run of "${schedule.description}" fails, run`,
    done: () => reload(schedule.id, ".schedule-on-failure-select") });
  remove.addEventListener("click", async () => {
    if (!confirm(`Delete the schedule "${schedule.description}"? Its past runs stay.`)) return;
    const tr = remove.closest("tr");
    const neighbour = tr.nextElementSibling ?? tr.previousElementSibling;
    try { await api("DELETE", base); } catch (error) { toast(error.message, "error"); }
    reload(neighbour ? Number(neighbour.dataset.scheduleId) : null);
  });
  const input = JSON.stringify(schedule.input);
  // One block per cell: on a phone a stacked table's cell lays its children out in a row.
  const cell = (label, className, ...children) => el("td", { "data-label": label, class: className }, el("div", {}, ...children));
  return el("tr", { "data-schedule-id": schedule.id },
    cell("When", null,
      el("div", {}, el("strong", { class: "schedule-description", text: schedule.description })),
      el("div", { class: "muted" }, el("code", { class: "schedule-cron", text: schedule.cron }), ` · ${schedule.timezone}`,
        schedule.runs_as ? ` · runs as ${schedule.runs_as.name}` : ""),
      input === "null" || input === "{}" ? "" : el("div", { class: "muted" }, "input ", el("code", { text: input })),
      schedule.retries ? el("div", { class: "muted schedule-retries", text: schedule.retries_description }) : "",
      handlerPending(schedule),
      handlerError(schedule, "schedule-on-failure-error")),
    cell("Next runs", "schedule-next", ...timesCell(schedule)),
    cell("Last run", "schedule-last", ...lastCell(schedule)),
    el("td", { "data-label": "" }, el("div", { class: "row wrap" }, toggle, remove, el("label", { class: "muted" }, "Retries ", retries),
      el("label", { class: "muted" }, "When a run fails, run: ", onFailure))));
}

// A version of the on-failure script another scripter published: a failure starts no run
// of it until the schedule's member changes, or pauses and resumes, the schedule.
function handlerPending(schedule) {
  const pending = schedule.on_failure_version_to_approve;
  if (pending === null) return "";
  const who = schedule.runs_as ? schedule.runs_as.name : "Its member";
  return el("div", { class: "muted schedule-handler-pending",
    text: `${who} must change, or pause and resume, this schedule before v${pending} of the script a failed run starts, published by another scripter, runs as them.` });
}

// Fill the panel for `scriptId` and wire its form (once); returns a function that reloads it.
export function schedulesPanel(panel, scriptId) {
  const table = panel.querySelector("#schedules-table");
  const form = panel.querySelector("#schedule-form");
  const error = panel.querySelector("#schedule-error");
  const zone = panel.querySelector("#schedule-zone");
  const zones = panel.querySelector("#time-zones");
  const path = () => `/api/f/${slug}/scripts/${scriptId()}/schedules`;
  // The browser lists region names only (Europe/Berlin), all of which schedules take; its
  // own zone may be a fixed offset they refuse (a machine set to Etc/GMT+5): UTC then.
  const offered = Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : [];
  const here = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!zone.value) zone.value = (offered.length ? offered.includes(here) : here) ? here : "UTC";
  // The Schedules page links each schedule here (…/editor/<id>#schedules-panel): open it.
  if (location.hash === "#schedules-panel") panel.open = true;
  zones.replaceChildren(...offered.map((name) => el("option", { value: name })));

  // `focusId` (after Pause, Resume, Delete or a change of retries): the rows are built
  // anew, so the keyboard goes to that schedule's new Pause/Resume (or `control`), or to
  // the cron field when it is gone (null); it fell to the page's top.
  async function load(focusId, control = ".schedule-toggle") {
    if (!scriptId()) return;
    panel.hidden = false;
    try {
      const found = await api("GET", path());
      table.hidden = !found.length;
      table.tBodies[0].replaceChildren(...found.map((schedule) => row(schedule, load)));
      const count = panel.querySelector("#schedules-count");
      count.textContent = found.length ? ` (${found.length})` : "";
    } catch (failure) { showError(error, failure.message); }
    if (focusId === undefined) return;
    const toggle = table.querySelector(`tr[data-schedule-id="${focusId}"] ${control}`);
    (toggle ?? panel.querySelector("#schedule-cron")).focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(error, "");
    let input;
    try { input = parseJson(panel.querySelector("#schedule-input").value, null); } catch {
      showError(error, "The input is not JSON: write an object such as {\"to\": \"team\"}, or leave it empty.");
      return;
    }
    try {
      const retries = Number(panel.querySelector("#schedule-retries").value);
      // A delay that is not a whole number goes as written: the server says what it takes.
      const delayText = panel.querySelector("#schedule-retry-delay").value.trim();
      const delay = /^\d+$/.test(delayText) ? Number(delayText) : delayText;
      await api("POST", path(), { cron: panel.querySelector("#schedule-cron").value, timezone: zone.value.trim() || "UTC", input,
        retries, ...(retries && delayText ? { retry_delay_s: delay } : {}),
        on_failure_script_id: chosenHandler("#schedule-on-failure") });
      panel.querySelector("#schedule-cron").value = "";
      toast("Schedule added", "ok");
      await load();
    } catch (failure) { showError(error, failure.message); }
  });
  return load;
}
