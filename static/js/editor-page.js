// The editor: CodeMirror, save/publish, run with live output, errors at their line,
// the run's integration calls, and which integrations the script needs.
import { createEditor } from "../vendor/editor.js";
import { api, el, labelledRow, nothingRow, parseJson, showError, slug, toast } from "./api.js";
import { ready } from "./ws.js";
import { FINAL, cancel, follow, linkRun, renderInto, runHistory, setStatus, start } from "./runs.js";
import { OutputView } from "./output-merge.js";
import { createInputEditor } from "./input-editor.js";
import { schedulesPanel } from "./schedules.js";
import { triggersPanel } from "./triggers.js";
import { storePanel } from "./store.js";
import { accountWords, callErrorWords } from "./wording.js";

const page = document.getElementById("editor-page");
let scriptId = page.dataset.scriptId ? Number(page.dataset.scriptId) : null;
const integrations = JSON.parse(page.dataset.integrations || "[]");
const $ = (id) => document.getElementById(id);
const parts = { status: $("run-status"), output: $("run-output"), result: $("run-result"), error: $("run-error"), elapsed: $("run-elapsed"), link: $("run-link") };

// Unsaved changes: set by any edit, cleared by a save; leaving the page asks first.
let dirty = false;
function markDirty() {
  dirty = true;
  $("save-status").textContent = "Unsaved changes";
}
window.addEventListener("beforeunload", (event) => {
  if (!dirty) return;
  event.preventDefault();
  event.returnValue = "";
});

const editor = createEditor($("editor"), {
  doc: $("initial-source").value,
  integrations,
  nonce: page.dataset.styleNonce,
  accountLabels: JSON.parse(page.dataset.labels || "[]"),
  onChange: () => { markDirty(); scheduleReadiness(); },
  onRun: () => run(),
  onSave: () => save(),
});
const inputFields = createInputEditor($("input-fields"), $("add-input"), JSON.parse(page.dataset.inputs || "[]"), markDirty);
$("script-name").addEventListener("input", markDirty);

// Saving keeps a version of the draft; `publish` (the checkbox) also publishes that version.
// Saves go one after another: a second press while a new script's first save is under way
// must update the script that save makes, not make another one.
let saving = Promise.resolve();
// The version this draft started from: a save sends it, and the server refuses one made
// over a version saved since (another tab, another scripter) instead of overwriting it.
// After such a refusal the next save is meant: it overwrites (sends none).
let baseVersion = Number(page.dataset.version || 0);
let overwrite = false;
function save(options) {
  saving = saving.then(() => saveNow(options));
  return saving;
}

async function saveNow({ publish } = {}) {
  try {
    // Reading the inputs refuses a default that cannot be sent (ApiError, field "inputs").
    const body = { name: $("script-name").value.trim() || "Untitled script", source: editor.getValue(), inputs: inputFields.read() };
    if (publish !== undefined || !scriptId) body.published = publish ?? $("script-published").checked;
    if (scriptId && !overwrite) body.base_version = baseVersion;
    const saved = scriptId
      ? await api("PATCH", `/api/f/${slug}/scripts/${scriptId}`, body)
      : await api("POST", `/api/f/${slug}/scripts`, body);
    dirty = false;
    baseVersion = saved.version;
    overwrite = false;
    if (!scriptId) {
      scriptId = saved.id;
      history.replaceState(null, "", `/f/${slug}/editor/${saved.id}`);
      showScriptRuns();
    }
    if (!$("script-name").value.trim()) $("script-name").value = saved.name;  // "Untitled script"
    showInSidebar(saved);
    $("save-status").textContent = `Saved ${new Date().toLocaleTimeString()}`;
    showVersion(saved);
  } catch (error) {
    toast(error.message, "error");
    if (publish !== undefined) $("script-published").checked = !publish;  // it did not change
    // What to fix, beside the button: a default that cannot be sent, a version that does
    // not compile (refused when published).
    $("save-status").textContent = ["inputs", "source"].includes(error.field) ? `Not saved: ${error.message}` : "Not saved";
    if (error.code === "edit_conflict") {
      overwrite = true;
      $("save-status").replaceChildren(`Not saved: ${error.message} `,
        el("a", { href: `/f/${slug}/editor/${scriptId}/versions`, target: "_blank", text: "Compare on Versions" }),
        ", or press Save again to keep yours over it.");
    }
  }
}

// A saved script has runs of its own (the link to them and its history table) and can be
// duplicated or deleted.
function showScriptRuns() {
  $("script-runs-link").href = `/f/${slug}/runs?script_id=${scriptId}`;
  $("script-runs").hidden = false;
  $("duplicate-script").hidden = false;
  $("delete-script").hidden = false;
  $("script-history").hidden = false;
  loadHistory();
  loadSchedules();
  loadTriggers();
  loadStore();
}

function showVersion(saved) {
  const line = $("version-line");
  const state = saved.published_version ? ["Members run ", el("strong", { text: `v${saved.published_version}` }), ". "]
    : saved.published ? ["Published. "] : ["Not published: members do not see it. "];
  line.replaceChildren(...state, el("a", { id: "versions-link", href: `/f/${slug}/editor/${saved.id}/versions`, text: "Versions" }));
}

// The sidebar lists the facility's scripts: a saved script shows there at once, under its
// current name and published state, without reloading the page.
function showInSidebar(saved) {
  const list = document.querySelector(".script-list ul");
  const href = `/f/${slug}/editor/${saved.id}`;
  let item = [...list.querySelectorAll("a")].find((a) => a.getAttribute("href") === href)?.parentElement;
  if (!item) {
    for (const link of list.querySelectorAll("a[aria-current]")) link.removeAttribute("aria-current");
    item = el("li");
    const after = [...list.children].find((li) => li.textContent.localeCompare(saved.name) > 0);
    list.insertBefore(item, after ?? null);
  }
  item.replaceChildren(el("a", { href, "aria-current": "page", text: saved.name }));
  if (saved.published) item.append(" ", el("span", { class: "badge ok", text: "published" }));
}

let currentRun = null;
$("cancel-run").addEventListener("click", async () => {
  if (!currentRun) return;
  $("cancel-run").disabled = true;
  try { await cancel(currentRun); } catch (error) { toast(error.message, "error"); $("cancel-run").disabled = false; }
});

async function run() {
  if ($("run-script").disabled) return;  // one run at a time, by button or by keyboard
  let input;
  try { input = parseJson($("run-input").value, {}); showError($("input-error"), ""); }
  catch { showError($("input-error"), "The input is not valid JSON."); return; }
  editor.clearErrors();
  parts.output.textContent = ""; parts.output.hidden = true; parts.result.hidden = true; parts.error.hidden = true;
  linkRun(parts, null);  // the last run's link until this one has its own
  $("run-calls").querySelector("tbody").replaceChildren();
  setStatus(parts.status, "queued");
  $("run-script").disabled = true;
  // On a phone the run panel is below the editor: bring its status into view, or Run
  // seems to do nothing.
  const shown = parts.status.getBoundingClientRect();
  if (shown.top < 0 || shown.bottom > window.innerHeight) parts.status.scrollIntoView({ block: "center" });
  try {
    await ready;
    // The draft's declarations, saved or not, check the input (and fill its defaults).
    const started = await start({ source: editor.getValue(), script_id: scriptId, input, inputs: inputFields.read() });
    attach(started);
  } catch (error) {
    $("run-script").disabled = false;
    setStatus(parts.status, "not_run");  // the server started no run
    parts.error.hidden = false; parts.error.textContent = error.message;
  }
}

// The panel follows a run that has not ended (started here, or found again on load): its
// status, Stop, its link, its output (what the server holds so far, then each chunk in its
// place by offset), its row in the history at once and, once it ends, its calls, the
// history, the store, the readiness and the error at its line.
function attach(started) {
  currentRun = started.id; $("cancel-run").hidden = false; $("cancel-run").disabled = false;
  $("run-script").disabled = true;
  // This run's own controls: its sign-in prompt may take the keyboard from them (prompts.js).
  $("run-script").dataset.runId = $("cancel-run").dataset.runId = started.id;
  linkRun(parts, started.id);
  parts.view = new OutputView(parts.output, 0, () => catchUpSoon(started.id));
  if (started.output) renderInto(parts, { type: "run.output", offset: 0, data: started.output });
  follow(started.id, async (message) => {
    renderInto(parts, message);
    if (message.type !== "run.finished") return;
    parts.view = null;
    $("run-script").disabled = false;
    $("cancel-run").hidden = true; currentRun = null;
    const error = message.run.error;
    if (error && error.line) editor.markError(error.line, `${error.code}: ${error.message}`);
    showCalls(started.id, message.run.calls);
    loadHistory();
    loadStore();  // the run may have changed the store
    refreshReadiness();
  });
  // Listed as running now, not only once it ends: the History said "No runs of yours yet:
  // press Run" under a run going on. This panel's handler above follows it, not the table.
  loadHistory();
}

// Chunks came past what the panel shows (printed before it listened, not yet read): the
// output the server holds fills the gap, read again until it does or the run ends.
let catchingUp = null;
function catchUpSoon(runId, delay = 1000) {
  if (catchingUp) return;
  catchingUp = setTimeout(async () => {
    catchingUp = null;
    if (currentRun !== runId || !parts.view) return;
    try {
      const run = await api("GET", `/api/f/${slug}/runs/${runId}`);
      if (currentRun === runId && parts.view) parts.view.add(0, run.output ?? "");
    } catch { catchUpSoon(runId); }
  }, delay);
}

// Reloaded (or opened again) while this user's run of the draft, started here, goes on:
// the panel picks it up as if Run had just started it. Runs of the draft are those of this
// script with no version; the filter by user keeps an admin's from other people's.
async function resume() {
  if (!scriptId) return;
  const query = new URLSearchParams({ script_id: scriptId, user_id: page.dataset.me, trigger: "manual", limit: "10" });
  const runs = await api("GET", `/api/f/${slug}/runs?${query}`);
  const going = runs.find((r) => r.version == null && !FINAL.includes(r.status));
  if (!going || currentRun || $("run-script").disabled) return;  // Run was pressed meanwhile
  parts.output.textContent = ""; parts.output.hidden = true; parts.result.hidden = true; parts.error.hidden = true;
  renderInto(parts, { type: "run.status", status: going.status, since: going.started_at ?? going.created_at });
  attach(going);
  // What it printed just before this page listened reaches the server by then.
  catchUpSoon(going.id, Number(page.dataset.storeMs || 2000) + 500);
}

// The calls of a run that ended, as the run page lists them; a run that made none (`made`,
// its count, counts integrations.require too) says so in the run page's words (data-none).
// On a phone a call is a card of labelled lines, as in the call log (labelledRow).
async function showCalls(runId, made) {
  const calls = await api("GET", `/api/f/${slug}/runs/${runId}/calls`);
  const table = $("run-calls");
  if (!calls.length && !made) {
    table.tBodies[0].replaceChildren(nothingRow(table, table.dataset.none));
    return;
  }
  table.tBodies[0].replaceChildren(...calls.map((call) => labelledRow(table, {},
      el("td", { class: "mono", text: `${call.method} ${call.path}` }),
      // In words, as the run page and the call log say them, with the code in the title.
      el("td", { class: "call-status", text: call.status ?? (call.error ? callErrorWords(call.error) : ""), title: call.status == null ? call.error : null }),
      el("td", { text: accountWords(call.account), title: call.account }),
      el("td", { text: call.duration_ms == null ? "" : String(Math.round(call.duration_ms)) }),
      el("td", { text: call.wait_ms == null ? "" : String(Math.round(call.wait_ms)) }))));
}

let readinessTimer = null;
function scheduleReadiness() {
  clearTimeout(readinessTimer);
  readinessTimer = setTimeout(refreshReadiness, 600);
}

async function refreshReadiness() {
  const list = $("readiness");
  try {
    const items = await api("POST", `/api/f/${slug}/readiness`, { source: editor.getValue() });
    if (!items.length) { list.replaceChildren(el("li", { class: "muted", text: "This script calls no integration." })); return; }
    list.replaceChildren(...items.map((item) => {
      // The server resolves each call's account by the broker's rule (DESIGN §3).
      const account = item.account == null ? "" : ` (account="${item.account}")`;
      if (!item.exists) return el("li", { class: "bad" }, el("code", { text: item.key }), `${account} — ${item.message}`);
      const node = el("li", { class: item.ready ? "ok" : "warn", "data-state": item.state }, el("strong", { text: item.name }), `${account} — ${item.message}`);
      if (item.state === "prompt" || item.state === "needs_reauth") node.append(" ", el("a", { href: "/settings/integrations", text: "connect now" }));
      return node;
    }));
  } catch (error) { list.replaceChildren(el("li", { class: "bad", text: error.message })); }
}

// An admin's history lists everyone's runs and says who started each (the table carries
// their id); a scripter's lists only their own and has no such column. One read at a
// time, in order: a quick run's end reads it again while its start's read is under way,
// and the older answer ("running") must not land last.
let historyRead = Promise.resolve();
function loadHistory() {
  const table = $("run-history");
  if (!scriptId) return historyRead;
  historyRead = historyRead.catch(() => {}).then(() =>
    runHistory(scriptId, table.tBodies[0], { me: table.dataset.me, empty: table.dataset.empty, unit: "" }));
  return historyRead;
}

const loadSchedules = schedulesPanel($("schedules-panel"), () => scriptId);
const loadTriggers = triggersPanel($("triggers-panel"), () => scriptId, () => $("script-published").checked);
const loadStore = storePanel($("store-panel"), () => scriptId);

$("save-script").addEventListener("click", () => save());

$("duplicate-script").addEventListener("click", async () => {
  if (dirty && !confirm("Duplicate the last saved version? Your unsaved changes stay here.")) return;
  try {
    const copy = await api("POST", `/api/f/${slug}/scripts/${scriptId}/duplicate`);
    location.assign(`/f/${slug}/editor/${copy.id}`);
  } catch (error) { toast(error.message, "error"); }
});

$("delete-script").addEventListener("click", async () => {
  const name = $("script-name").value.trim() || "this script";
  if (!confirm(`Delete ${name} and all its versions? Its past runs stay on the Runs page.`)) return;
  try {
    await api("DELETE", `/api/f/${slug}/scripts/${scriptId}`);
    dirty = false;
    location.assign(`/f/${slug}/editor`);
  } catch (error) { toast(error.message, "error"); }
});
$("run-script").addEventListener("click", run);
// The shortcuts work anywhere on the page, not only in the code (the code's own keymap
// handles them there first): in the name, the inputs or the test input, Ctrl/⌘-S would
// open the browser's "Save page" and Ctrl/⌘-Enter did nothing.
document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || !(event.ctrlKey || event.metaKey) || event.altKey || event.shiftKey) return;
  if (event.key === "s" || event.key === "S") { event.preventDefault(); save(); }
  else if (event.key === "Enter") { event.preventDefault(); run(); }
});
// Enter in the name saves it (a rename), as in any one-line form.
$("script-name").addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || event.ctrlKey || event.metaKey || event.isComposing) return;
  event.preventDefault();
  save();
});
// The Triggers panel says whether its URLs start runs: reloaded once the change is saved
// (or refused, the box set back).
$("script-published").addEventListener("change", async () => {
  if (!scriptId) return;
  await save({ publish: $("script-published").checked });
  loadTriggers();
});
refreshReadiness();
loadHistory();
loadSchedules();
loadTriggers();
loadStore();
resume().catch(() => {});  // the panel then says "not run", as before
