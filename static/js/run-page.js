// One run: status and output live, Stop, Run again, and a reload once it ends so the
// result, error, traceback and calls show as the server renders them.
import { api, slug, toast } from "./api.js";
import { on } from "./ws.js";
import { setStatus } from "./runs.js";
import { localTimes, startTimers } from "./elapsed.js";

const page = document.getElementById("run-page");
const runId = page.dataset.runId;
const status = document.getElementById("run-status");
const output = document.getElementById("run-output");
let finished = page.dataset.final === "yes";

function ended() {
  if (finished) return;
  finished = true;
  location.reload();
}

on("run.status", (message) => { if (message.run_id === runId) setStatus(status, message.status); });
on("run.output", (message) => {
  if (message.run_id !== runId) return;
  output.textContent += message.data;
  document.getElementById("no-output")?.remove();
});
on("run.finished", (message) => { if (message.run_id === runId) ended(); });

// Runs of other people (seen by admins) send their events elsewhere: ask now and then.
if (!finished) {
  setInterval(async () => {
    try {
      const run = await api("GET", `/api/f/${slug}/runs/${runId}`);
      setStatus(status, run.status);
      if (run.error || run.status === "succeeded") ended();
    } catch { /* next time */ }
  }, 3000);
}

document.getElementById("stop-run")?.addEventListener("click", async (event) => {
  event.target.disabled = true;
  try { await api("POST", `/api/f/${slug}/runs/${runId}/cancel`); }
  catch (error) { toast(error.message, "error"); event.target.disabled = false; }
});

document.getElementById("rerun")?.addEventListener("click", async (event) => {
  event.target.disabled = true;
  try {
    const run = await api("POST", `/api/f/${slug}/runs/${runId}/rerun`);
    location.assign(`/f/${slug}/runs/${run.id}`);
  } catch (error) { toast(error.message, "error"); event.target.disabled = false; }
});

localTimes();
startTimers();
