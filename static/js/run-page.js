// One run: status and output live over the websocket (an admin's page hears every run of
// the facility), Stop, Run again, Delete once it ended, and a reload once it ends so the result, error,
// traceback and calls show as the server renders them.
import { api, slug, toast } from "./api.js";
import { on } from "./ws.js";
import { FINAL, setStatus } from "./runs.js";
import { localTimes, startTimers, timerStatus } from "./elapsed.js";
import { OutputView } from "./output-merge.js";

const page = document.getElementById("run-page");
const runId = page.dataset.runId;
const status = document.getElementById("run-status");
// The duration's live timer leaves waits for a sign-in out, as the final duration does.
const timer = document.querySelector("#run-duration .elapsed");
let finished = page.dataset.final === "yes";
let catchUpTimer = null;

function ended() {
  if (finished) return;
  finished = true;
  location.reload();
}

function showing() {
  document.getElementById("no-output")?.remove();
  document.getElementById("run-output").hidden = false;
}

// What the server holds now: the status and the output stored so far.
async function catchUp() {
  const run = await api("GET", `/api/f/${slug}/runs/${runId}`);
  if (FINAL.includes(run.status)) { ended(); return; }
  setStatus(status, run.status);
  timerStatus(timer, run.status);
  view.add(0, run.output ?? "");
  if (view.shown) showing();
}

function catchUpSoon(delay = 1000) {
  if (finished || catchUpTimer) return;
  catchUpTimer = setTimeout(async () => {
    catchUpTimer = null;
    try { await catchUp(); } catch { catchUpSoon(); }
  }, delay);
}

const view = new OutputView(
  document.getElementById("run-output"), Number(page.dataset.outputLength || 0), () => catchUpSoon());

on("run.status", (message) => {
  if (message.run_id !== runId) return;
  setStatus(status, message.status);
  timerStatus(timer, message.status);
});
on("run.output", (message) => {
  if (message.run_id !== runId) return;
  view.add(message.offset ?? view.shown, message.data);
  showing();
});
on("run.finished", (message) => { if (message.run_id === runId) ended(); });
// Listening (again): catch up on what happened before, and once more after the server
// stored the output printed just before this page listened.
on("hello", () => {
  if (finished) return;
  catchUp().catch(() => catchUpSoon());
  catchUpSoon(Number(page.dataset.storeMs || 2000) + 500);
});

// And now and then while the run goes on, whatever the socket does: an event lost on the
// way (a dropped connection not yet noticed, a server that restarted) must not leave the
// page showing a run that ended. First after 5 s, then each wait half as long again, up
// to 30 s.
let recheckS = 5;
function recheck() {
  if (finished) return;
  catchUpSoon(0);
  recheckS = Math.min(recheckS * 1.5, 30);
  setTimeout(recheck, recheckS * 1000);
}
if (!finished) setTimeout(recheck, recheckS * 1000);

document.getElementById("stop-run")?.addEventListener("click", async (event) => {
  event.target.disabled = true;
  try { await api("POST", `/api/f/${slug}/runs/${runId}/cancel`); }
  catch (error) { toast(error.message, "error"); event.target.disabled = false; }
});

document.getElementById("rerun")?.addEventListener("click", async (event) => {
  event.target.disabled = true;
  try {
    // From the page, with its websocket: the run may ask for a sign-in here, as from Run.
    const run = await api("POST", `/api/f/${slug}/runs/${runId}/rerun`, { interactive: true });
    location.assign(`/f/${slug}/runs/${run.id}`);
  } catch (error) { toast(error.message, "error"); event.target.disabled = false; }
});

// Shown once the run has ended (the server refuses to delete one that goes on).
document.getElementById("delete-run")?.addEventListener("click", async (event) => {
  if (!confirm("Delete this run with its input, output and result? Its calls still count in the usage.")) return;
  event.target.disabled = true;
  try {
    await api("DELETE", `/api/f/${slug}/runs/${runId}`);
    location.assign(`/f/${slug}/runs`);
  } catch (error) { toast(error.message, "error"); event.target.disabled = false; }
});

localTimes();
startTimers();
