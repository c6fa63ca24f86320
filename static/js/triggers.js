// The editor's Triggers panel: a saved script's webhook triggers (secret URLs another
// service POSTs to). A new one's URL is shown once, with a Copy button; the list says
// when each was made and last used, how its POSTs are signed (GitHub's way with a secret
// made here, Slack's with the Slack app's secret pasted here, Standard Webhooks' with the
// sender's whsec_ secret pasted here), and the last call its URL refused; Pause stops the
// URL until Resume; Revoke asks first. The server checks everything.
import { api, copyOnClick, el, showError, slug, toast } from "./api.js";
import { agoText, shortTime } from "./elapsed.js";
import { chosenHandler, handlerError, handlerSelect } from "./failure_handlers.js";

// A refused call's error code in words (the code is shown too: it is what the sender's
// delivery log says).
const REFUSALS = {
  signature_invalid: "wrong or missing signature",
  trigger_paused: "the trigger is paused",
  trigger_stopped: "the trigger starts no run now",
  invalid_input: "a body it cannot take",
  unsupported_media_type: "a body of a type it does not take",
  request_too_large: "a body too large",
  too_many_attempts: "too many calls a minute",
  too_many_queued_runs: "too many runs queued",
  idempotency_key_run_deleted: "a redelivery of a deleted run",
};

// The last call its URL refused, so a maker sees why their sender fails.
function refusedNote(trigger) {
  const refusal = trigger.last_refused;
  if (!refusal) return [];
  const words = REFUSALS[refusal.code];
  const count = trigger.refused_count > 1 ? ` · ${trigger.refused_count} refused in all` : "";
  return [el("div", { class: "muted trigger-refused", title: new Date(refusal.at).toLocaleString(),
    text: `last refused ${agoText(Date.now() - Date.parse(refusal.at))}: ${refusal.code} (${refusal.status}${words ? `, ${words}` : ""})${count}` })];
}

// How a trigger's POSTs must be signed, in words (its `signature` scheme).
const SIGNATURES = {
  github: "checks GitHub’s signatures (X-Hub-Signature-256)",
  slack: "checks Slack’s signatures (X-Slack-Signature)",
  standard: "checks Standard Webhooks signatures (webhook-signature)",
};

// `me`: the signed-in member's id and whether they are an admin. Only the trigger's maker
// approves a version, and only they or an admin revoke it: the others see who may.
function row(trigger, reload, me) {
  const mine = trigger.runs_as.id === me.id;
  const base = `/api/f/${slug}/scripts/${trigger.script_id}/triggers/${trigger.id}`;
  const revoke = el("button", { type: "button", class: "danger trigger-revoke", text: "Revoke" });
  revoke.addEventListener("click", async () => {
    if (!confirm(`Revoke the trigger "${trigger.name}"? Its URL stops working at once; its past runs stay.`)) return;
    try { await api("DELETE", base); toast("Trigger revoked", "ok"); } catch (error) { toast(error.message, "error"); }
    reload(null);
  });
  // A version another scripter published since: the URL answers 409 until its maker
  // approves it (the server refuses anyone else, in words).
  const pending = trigger.version_to_approve;
  const approval = pending === null ? [] : [el("div", {},
    el("span", { class: "badge warn trigger-pending", text: `v${pending} to approve` }),
    el("div", { class: "muted", text: `${trigger.runs_as.name} must approve the version another scripter published before this URL runs it.` }))];
  // Its on-failure script's version another scripter published: it starts no run until
  // the maker approves (the same Approve approves both).
  const handlerPending = trigger.on_failure_version_to_approve;
  if (handlerPending !== null) approval.push(el("div", { class: "muted trigger-handler-pending",
    text: `${trigger.runs_as.name} must approve v${handlerPending} of the script a failed run starts, published by another scripter, before it runs.` }));
  const what = pending === null ? `on-failure v${handlerPending}` : `v${pending}`;
  const approve = el("button", { type: "button", class: "trigger-approve", text: `Approve ${what}` });
  approve.addEventListener("click", async () => {
    try { await api("POST", `${base}/approve`); toast(`${what} approved`, "ok"); } catch (error) { toast(error.message, "error"); }
    reload(trigger.id);
  });
  // Paused: its URL answers 409 until its maker or an admin resumes it.
  const toggle = el("button", { type: "button", class: "trigger-toggle", text: trigger.enabled ? "Pause" : "Resume" });
  toggle.addEventListener("click", async () => {
    try {
      await api("PATCH", base, { enabled: !trigger.enabled });
      toast(trigger.enabled ? "Trigger paused" : "Trigger resumed", "ok");
    } catch (error) { toast(error.message, "error"); }
    reload(trigger.id, ".trigger-toggle");
  });
  const paused = trigger.enabled ? [] : [el("div", {},
    el("span", { class: "badge warn trigger-paused", text: "paused" }), " ",
    el("span", { class: "muted", text: "its URL answers 409 and starts nothing until resumed" }))];
  // Its URL starts nothing now (the script unpublished, its member gone or demoted): said
  // here, as the caller only sees a 409.
  const stopped = trigger.stopped === null ? [] : [el("div", {},
    el("span", { class: "badge bad", text: "stopped" }), " ",
    el("span", { class: "trigger-stopped", text: trigger.stopped }))];
  // The script a failed run of it starts, changed in place (its maker or an admin, as
  // Pause), and why its last on-failure run could not start.
  const onFailure = handlerSelect(trigger, { formSelect: "#trigger-on-failure", base,
    className: "trigger-on-failure-select", label: `When a run of "${trigger.name}" fails, run`,
    done: () => reload(trigger.id, ".trigger-on-failure-select"), disabled: !(mine || me.admin) });
  const cell = (label, className, ...children) => el("td", { "data-label": label, class: className }, el("div", {}, ...children));
  return el("tr", { "data-trigger-id": trigger.id },
    cell("Name", "trigger-name", el("strong", { text: trigger.name }),
      el("div", { class: "muted", text: `runs as ${trigger.runs_as.name}` }),
      el("div", { class: "muted trigger-signed", text: SIGNATURES[trigger.signature] ?? "checks no signature" }),
      el("div", { class: "muted trigger-input", text: trigger.input === "request" ? "input: the whole request" : "input: the body" }), ...paused, ...stopped, ...approval,
      handlerError(trigger, "trigger-on-failure-error")),
    cell("Created", "trigger-created", shortTime(trigger.created_at)),
    cell("Last used", "trigger-last-used", trigger.last_used_at ? shortTime(trigger.last_used_at) : el("span", { class: "muted", text: "never" }), ...refusedNote(trigger)),
    el("td", { "data-label": "" }, el("div", { class: "row wrap" },
      el("a", { class: "trigger-runs", href: `/f/${slug}/runs?webhook_trigger_id=${trigger.id}`, "aria-label": `Runs of ${trigger.name}`, text: "Runs" }),
      ...((pending === null && handlerPending === null) || !mine ? [] : [approve]),
      ...(mine || me.admin ? [toggle, revoke] : [el("span", { class: "muted trigger-whose", text: `Only ${trigger.runs_as.name} or an admin can pause or revoke it` })]),
      el("label", { class: "muted" }, "When a run fails, run: ", onFailure))));
}

// Fill the panel for `scriptId` and wire its form (once); returns a function that reloads it.
// `published()` says whether the script is published now: until it is, the panel says its
// URLs start nothing (the server answers 409 to a new trigger and to every call).
export function triggersPanel(panel, scriptId, published) {
  const table = panel.querySelector("#triggers-table");
  const form = panel.querySelector("#trigger-form");
  const error = panel.querySelector("#trigger-error");
  const name = panel.querySelector("#trigger-name");
  const made = panel.querySelector("#trigger-made");
  const url = panel.querySelector("#trigger-url");
  const copy = panel.querySelector("#copy-trigger-url");
  const signature = panel.querySelector("#trigger-signature");
  // The schemes whose secret the sender makes: each has its field to paste it into.
  const pasted = {
    slack: panel.querySelector("#trigger-slack-secret"),
    standard: panel.querySelector("#trigger-standard-secret"),
  };
  const secret = panel.querySelector("#trigger-secret");
  const input = panel.querySelector("#trigger-input");
  const path = () => `/api/f/${slug}/scripts/${scriptId()}/triggers`;

  // `focus` after a revoke (null): the row is gone, so the keyboard goes to the name field
  // rather than to the page's top; after an approval (its id), to that row's Revoke; after
  // Pause or Resume, to that row's new button (`control`).
  async function load(focus, control = ".trigger-revoke") {
    if (!scriptId()) return;
    panel.hidden = false;
    panel.querySelector("#triggers-unpublished").hidden = published();
    try {
      const found = await api("GET", path());
      table.hidden = !found.length;
      const me = { id: Number(panel.dataset.me), admin: panel.dataset.admin !== undefined };
      table.tBodies[0].replaceChildren(...found.map((trigger) => row(trigger, load, me)));
      panel.querySelector("#triggers-count").textContent = found.length ? ` (${found.length})` : "";
    } catch (failure) { showError(error, failure.message); }
    if (focus === undefined) return;
    const kept = table.querySelector(`tr[data-trigger-id="${focus}"] ${control}`);
    (kept ?? name).focus();
  }

  // Slack makes its app's signing secret, and a Standard Webhooks sender its whsec_ one:
  // only those schemes ask for one to be pasted, each in its own field.
  function showPastedSecret() {
    for (const [scheme, field] of Object.entries(pasted)) {
      field.closest("label").hidden = signature.value !== scheme;
      field.required = signature.value === scheme;
    }
  }
  signature.addEventListener("change", showPastedSecret);

  copyOnClick(copy, url, "URL");
  copyOnClick(panel.querySelector("#copy-trigger-secret"), secret, "signing secret");

  // A field the browser refuses (a pasted secret left empty) stops the form before
  // submit: the last answer's words must go too, or they read as the reason.
  form.addEventListener("invalid", () => showError(error, ""), true);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(error, "");
    try {
      const scheme = signature.value || null;
      const asked = { name: name.value, signature: scheme, input: input.value,
        on_failure_script_id: chosenHandler("#trigger-on-failure") };
      if (Object.hasOwn(pasted, scheme)) asked.signing_secret = pasted[scheme].value;
      const trigger = await api("POST", path(), asked);
      name.value = "";
      signature.value = "";
      for (const field of Object.values(pasted)) field.value = "";  // kept by the server only, encrypted
      showPastedSecret();
      input.value = "body";
      panel.querySelector("#trigger-on-failure").value = "";
      url.textContent = trigger.url;
      secret.textContent = trigger.signing_secret ?? "";
      panel.querySelector("#trigger-secret-row").hidden = !trigger.signing_secret;
      made.hidden = false;
      await load();
      copy.focus();  // the one thing to do next: copy the URL while it is shown
    } catch (failure) { showError(error, failure.message); }
  });
  return load;
}
