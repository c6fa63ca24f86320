// The runs page: rows follow their runs live over the websocket (an admin's page hears
// every run of the facility, a member's only the member's own), elapsed timers tick, new
// runs are announced.
import { api, slug } from "./api.js";
import { on, ready } from "./ws.js";
import { FINAL, setStatus } from "./runs.js";
import { localTimes, startTimers, timerStatus } from "./elapsed.js";
import { sendOnlySet } from "./filter-form.js";

const table = document.getElementById("runs-table");
// From and To are days where the browser is, as the list's times are: the server reads
// them in this zone (an IANA name; it keeps UTC when there is none).
const zone = document.querySelector("#run-filters input[name=tz]");
if (zone) zone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
sendOnlySet(document.getElementById("run-filters"));
const rows = new Map([...document.querySelectorAll("tr[data-run-id]")].map((row) => [row.dataset.runId, row]));

function update(row, run) {
  row.dataset.status = run.status;
  setStatus(row.querySelector(".run-status"), run.status);
  if (run.calls !== undefined) row.querySelector(".calls-count").textContent = String(run.calls);
  const duration = row.querySelector(".duration");
  if (run.duration_ms != null) duration.textContent = `${Math.round(run.duration_ms)} ms`;
  // A run that ended without a duration (stopped or interrupted while parked): no timer.
  else if (FINAL.includes(run.status)) duration.replaceChildren();
  else if (run.status === "running" && !duration.querySelector(".elapsed")) {
    const span = document.createElement("span");
    span.className = "elapsed"; span.dataset.since = run.started_at ?? new Date().toISOString();
    duration.replaceChildren(span);
  }
  timerStatus(duration.querySelector(".elapsed"), run.status);
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

// Listening (again): rows that changed before this page listened are read once.
async function catchUp() {
  for (const [id, row] of rows) {
    if (FINAL.includes(row.dataset.status)) continue;
    try { update(row, await api("GET", `/api/f/${slug}/runs/${id}`)); } catch { /* gone */ }
  }
}
on("hello", () => { catchUp(); });
if (!table && slug) on("run.status", announce);
// Tells tests (and curious people) that live updates are flowing.
ready.then(() => { document.body.dataset.live = "yes"; });
localTimes();
startTimers();
