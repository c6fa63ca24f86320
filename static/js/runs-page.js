// The runs page: rows follow their runs live (websocket for your own runs, a light poll
// for runs of others that admins see), elapsed timers tick, new runs are announced.
import { api, slug } from "./api.js";
import { on, ready } from "./ws.js";
import { setStatus } from "./runs.js";
import { localTimes, startTimers } from "./elapsed.js";

const FINAL = ["succeeded", "failed", "timed_out", "cancelled"];
const table = document.getElementById("runs-table");
const rows = new Map([...document.querySelectorAll("tr[data-run-id]")].map((row) => [row.dataset.runId, row]));

function update(row, run) {
  row.dataset.status = run.status;
  setStatus(row.querySelector(".run-status"), run.status);
  if (run.calls !== undefined) row.querySelector(".calls-count").textContent = String(run.calls);
  const duration = row.querySelector(".duration");
  if (run.duration_ms != null) duration.textContent = `${Math.round(run.duration_ms)} ms`;
  else if (run.started_at && !FINAL.includes(run.status) && !duration.querySelector(".elapsed")) {
    const span = document.createElement("span");
    span.className = "elapsed"; span.dataset.since = run.started_at;
    duration.replaceChildren(span);
  }
}

function announce() {
  // New runs appear on the first page of an unfiltered list; elsewhere they would jump in.
  const notice = document.getElementById("new-runs");
  if (notice) notice.hidden = false;
}

on("run.status", (message) => {
  const row = rows.get(message.run_id);
  if (row) update(row, { status: message.status });
  else announce();
});
on("run.finished", (message) => {
  const row = rows.get(message.run_id);
  if (row) update(row, message.run);
});

// Admins see other people's runs, whose events go to those people's pages: ask instead.
async function poll() {
  for (const [id, row] of rows) {
    if (FINAL.includes(row.dataset.status)) continue;
    try { update(row, await api("GET", `/api/f/${slug}/runs/${id}`)); } catch { /* next time */ }
  }
}
if (table) setInterval(poll, 3000);
if (!table && slug) on("run.status", announce);
// Tells tests (and curious people) that live updates are flowing.
ready.then(() => { document.body.dataset.live = "yes"; });
localTimes();
startTimers();
