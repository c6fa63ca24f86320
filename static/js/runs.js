// Follow runs over the websocket: status, output lines as they come, the result.
import { api, el, slug } from "./api.js";
import { on } from "./ws.js";
import { elapsedText, shortTime, timerStatus } from "./elapsed.js";
import { restatesCode, rules, statusTone, statusWords, triggerMark } from "./wording.js";

// Where members connect their own accounts (settings_place). A member's words send them
// there only when it is theirs to do (never for admin_reasons); there it is a link.
const { admin_reasons: ADMIN_REASONS, settings_place: SETTINGS, settings_url: SETTINGS_URL } = rules();
export function linkSettings(words) {
  const at = words.indexOf(SETTINGS);
  if (at < 0) return [words];
  return [words.slice(0, at), el("a", { href: SETTINGS_URL, text: SETTINGS }), words.slice(at + SETTINGS.length)];
}

export const FINAL = rules().final;
const buffered = new Map();
const followers = new Map();
let starting = 0;

// A run's first events may arrive before its start() returns: they are kept for it. An
// admin's page also hears everyone else's runs, which nobody here follows: never kept.
function deliver(message) {
  const handler = followers.get(message.run_id);
  if (handler) {
    if (message.type === "run.finished") followers.delete(message.run_id);
    handler(message);
  } else if (starting) {
    const list = buffered.get(message.run_id) ?? [];
    list.push(message);
    buffered.set(message.run_id, list);
  }
}
for (const type of ["run.status", "run.output", "run.finished"]) on(type, deliver);

// Read a followed run as the server holds it now and hand its end on as the event would
// have been (and, with `status`, where it is when it has not ended).
async function reread(runId, { status }) {
  const run = await api("GET", `/api/f/${slug}/runs/${runId}`);
  if (!followers.has(runId)) return;
  if (FINAL.includes(run.status)) deliver({ type: "run.finished", run_id: runId, run });
  else if (status) deliver({ type: "run.status", run_id: runId, status: run.status });
}

// A socket that connected again may have missed events of the runs followed here (a
// server or Redis restart, a network drop), so no panel waits for an end it missed.
on("hello", () => {
  for (const runId of [...followers.keys()]) reread(runId, { status: true }).catch(() => {});
});

// And now and then while a run goes on, whatever the socket does (an end lost on an open
// socket): first after 5 s, then each wait half as long again, up to 30 s. Only its end
// is taken: a status read then may be older than an event that came meanwhile.
function recheck(runId, seconds) {
  setTimeout(() => {
    if (!followers.has(runId)) return;
    reread(runId, { status: false }).catch(() => {})
      .finally(() => recheck(runId, Math.min(seconds * 1.5, 30)));
  }, seconds * 1000);
}

export function follow(runId, handler) {
  followers.set(runId, handler);
  for (const message of buffered.get(runId) ?? []) deliver(message);  // an end lets it go
  buffered.delete(runId);
  if (followers.has(runId)) recheck(runId, 5);
}

export async function start(body) {
  starting += 1;
  try {
    const run = await api("POST", `/api/f/${slug}/runs`, { ...body, interactive: true });
    // Kept for this run only (another start still under way keeps them all for now).
    if (starting === 1) for (const id of buffered.keys()) if (id !== run.id) buffered.delete(id);
    return run;
  } finally {
    starting -= 1;
  }
}

// Cancel a run in any state that has not ended (queued, running, waiting, parked).
export async function cancel(runId) {
  return api("POST", `/api/f/${slug}/runs/${runId}/cancel`);
}

// A live elapsed timer beside a panel's status while its run has not ended; a wait for a
// sign-in is shown apart, not in the run's time (elapsed.js). It counts from `since` (a run
// a panel picked up again when the page was reloaded) or from now (one it just started).
const timers = new WeakMap();
function timer(node, running, since = null) {
  if (!node) return;
  if (running && !timers.has(node)) {
    node.dataset.since = since ?? new Date().toISOString();
    node.dataset.waitedMs = "0";
    delete node.dataset.waitingSince;
    const tick = () => { node.textContent = elapsedText(node); };
    tick();
    node.hidden = false;
    timers.set(node, setInterval(tick, 1000));
  } else if (!running && timers.has(node)) {
    clearInterval(timers.get(node));
    timers.delete(node);
  }
}

// A panel's "Details" link: to its run's own page (live while the run goes on), shown
// from the moment the run starts; hidden (null) while a new one is being started.
export function linkRun(parts, runId) {
  if (!parts.link) return;
  parts.link.hidden = runId == null;
  if (runId != null) parts.link.href = `/f/${slug}/runs/${runId}`;
}

// Render a run's progress into the elements of a panel. With `parts.view` (an OutputView
// of parts.output) each chunk goes in its place by its offset: a panel that read the output
// stored so far and then listens shows none twice and sees a gap (editor-page.js).
export function renderInto(parts, message) {
  if (message.type === "run.status") {
    setStatus(parts.status, message.status);
    timer(parts.elapsed, true, message.since);
    timerStatus(parts.elapsed, message.status);
  }
  if (message.type === "run.output") {
    parts.output.hidden = false;
    if (parts.view) parts.view.add(message.offset ?? parts.view.shown, message.data);
    else parts.output.textContent += message.data;
  }
  if (message.type === "run.finished") {
    const run = message.run;
    setStatus(parts.status, run.status);
    timer(parts.elapsed, false);
    if (parts.elapsed && run.duration_ms != null) { parts.elapsed.hidden = false; parts.elapsed.textContent = `${Math.round(run.duration_ms)} ms`; }
    // Ended without a duration (cancelled or interrupted before its worker reported one):
    // no "so far" left behind as if it still ran.
    else if (parts.elapsed) { parts.elapsed.hidden = true; parts.elapsed.textContent = ""; }
    linkRun(parts, run.id);
    // The whole output: some of it may have been printed while the socket was down.
    if (run.output && run.output.length > parts.output.textContent.length) { parts.output.hidden = false; parts.output.textContent = run.output; }
    if (run.status === "succeeded") {
      parts.result.hidden = false;
      parts.result.textContent = JSON.stringify(run.result, null, 2);
    }
    if (run.error) {
      parts.error.hidden = false;
      parts.error.replaceChildren(...errorWords(run.error), run.error.line ? ` (line ${run.error.line})` : "");
      const trace = run.error.trace ?? [];
      if (trace.length > 1 || trace[0]?.repeated) {
        parts.error.append(el("ol", { class: "traceback mono" }, ...trace.flatMap(traceLines)));
      }
      // The facility's own account is an admin's to connect: no link to one's own accounts.
      if (run.error.code === "no_integration_grant" && !ADMIN_REASONS.includes(run.error.reason)) {
        parts.error.append(" ", el("a", { href: SETTINGS_URL, text: `Connect the account in ${SETTINGS}` }));
      }
    }
  }
}

// A traceback frame as Python says it: one line for a frame that came again right after
// itself, with its repeat count, then how many frames were left out there to fit, if any
// (run.html does the same; runs stored before those fields were added lack them).
function traceLines(frame) {
  const times = (n) => `${n} more time${n === 1 ? "" : "s"}`;
  const line = `line ${frame.line}, in ${frame.name}`;
  const lines = [el("li", { text: frame.repeated ? `${line} (repeated ${times(frame.repeated)})` : line })];
  if (frame.omitted_after) {
    const n = frame.omitted_after;
    lines.push(el("li", { class: "trace-omitted muted", text: `… ${n} frame${n === 1 ? "" : "s"} left out …` }));
  }
  return lines;
}

// The error's code, then its message; a message that says its code in words ("cancelled":
// "the run was cancelled") is shown alone, or it would say it twice (as run.html does).
export function errorWords(error) {
  const message = String(error.message ?? "");
  if (restatesCode(error.code, message)) {
    return [message.charAt(0).toUpperCase() + message.slice(1)];
  }
  return [el("strong", { text: error.code }), ` ${message}`];
}

export function setStatus(node, status) {
  node.textContent = statusWords(status);
  // classList, not className: the node keeps the classes pages find it by (.run-status).
  node.classList.remove("ok", "bad", "warn");
  node.classList.add("badge");
  const tone = statusTone(status);
  if (tone) node.classList.add(tone);
}

// A script's last ten runs into a table's body (the Scripts page's "Your recent runs", the
// editor's History): when, who (only with `me`, the viewer's id: an admin's list holds
// everyone's runs; "you" for their own), status, duration and calls. `empty` is said in
// one row spanning the table when there are none.
export async function runHistory(scriptId, tbody, { me = null, empty = null, unit = " ms" } = {}) {
  const runs = await api("GET", `/api/f/${slug}/runs?script_id=${scriptId}&limit=10`);
  if (!runs.length && empty) {
    const columns = tbody.closest("table").tHead.rows[0].cells.length;
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: columns, class: "muted", text: empty })));
    return;
  }
  const runner = (run) => {
    if (me == null) return [];
    const mine = String(run.user.id) === String(me);
    return [el("td", { class: mine ? "runner muted" : "runner", text: mine ? "you" : run.user.name })];
  };
  tbody.replaceChildren(...runs.map((run) => el("tr", {},
    el("td", {}, shortTime(run.created_at)), ...runner(run),
    el("td", { text: statusWords(run.status) + (triggerMark(run.trigger) ? ` (${triggerMark(run.trigger)})` : "") }),
    el("td", { text: run.duration_ms == null ? "" : `${Math.round(run.duration_ms)}${unit}` }),
    el("td", { text: String(run.calls) }))));
  // A run that has not ended is read again as it moves on: its row said "running" for good
  // once read so (the page opened or reloaded mid-run, a schedule's run). Not one a panel
  // here follows already: it keeps its handler.
  for (const run of runs) {
    if (FINAL.includes(run.status) || followers.has(run.id)) continue;
    follow(run.id, (message) => {
      if (message.type !== "run.output") runHistory(scriptId, tbody, { me, empty, unit }).catch(() => {});
    });
  }
}
