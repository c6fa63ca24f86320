// Live elapsed timers (<span class="elapsed" data-since="ISO">) and local times
// (<time class="local-time" datetime="ISO">) on server-rendered pages.
export function formatElapsed(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

// A live run's time so far counts as its final duration does (the run's own clock): waits
// for a sign-in are left out, and while one lasts it is shown apart. A timer holds
// data-since (when the run started), data-waited-ms (its waits that are over) and, while
// the run waits for a sign-in, data-waiting-since.
export function elapsedText(node, now = Date.now()) {
  const { since, waitedMs, waitingSince } = node.dataset;
  const waiting = waitingSince ? Math.max(0, now - Date.parse(waitingSince)) : 0;
  const own = now - Date.parse(since) - Number(waitedMs || 0) - waiting;
  const text = `${formatElapsed(own)} so far`;
  return waitingSince ? `${text}, ${formatElapsed(waiting)} waiting for a sign-in` : text;
}

// A run's new status: a wait for a sign-in begins (waiting, parked) or ends (running).
export function timerStatus(node, status) {
  if (!node) return;
  const waits = status === "waiting_for_grant" || status === "parked";
  if (waits && !node.dataset.waitingSince) node.dataset.waitingSince = new Date().toISOString();
  if (!waits && node.dataset.waitingSince) {
    const waited = Math.max(0, Date.now() - Date.parse(node.dataset.waitingSince));
    node.dataset.waitedMs = String(Number(node.dataset.waitedMs || 0) + waited);
    delete node.dataset.waitingSince;
  }
  if (node.dataset.since) node.textContent = elapsedText(node);
}

function tick() {
  for (const node of document.querySelectorAll(".elapsed[data-since]")) node.textContent = elapsedText(node);
}

export function startTimers() {
  tick();
  setInterval(tick, 1000);
}

export function localTimes(root = document) {
  for (const node of root.querySelectorAll("time.local-time[datetime]")) {
    node.textContent = new Date(node.getAttribute("datetime")).toLocaleString();
  }
}

// How long until a time to come, in words for a glance ("in 2 min", "in 3 h", "in 2 days");
// one already past is "due now".
export function untilText(ms) {
  if (ms <= 0) return "due now";
  const minutes = ms / 60000;
  if (minutes < 1) return "in under a minute";
  if (minutes < 59.5) return `in ${Math.round(minutes)} min`;
  const hours = minutes / 60;
  if (hours < 23.5) return `in ${Math.round(hours)} h`;
  const days = Math.round(hours / 24);
  return days === 1 ? "in 1 day" : `in ${days} days`;
}

// How long ago a time was, in words for a glance ("just now", "3 min ago", "2 h ago",
// "4 days ago"); untilText's counterpart.
export function agoText(ms) {
  const minutes = ms / 60000;
  if (minutes < 1) return "just now";
  if (minutes < 59.5) return `${Math.round(minutes)} min ago`;
  const hours = minutes / 60;
  if (hours < 23.5) return `${Math.round(hours)} h ago`;
  const days = Math.round(hours / 24);
  return days === 1 ? "1 day ago" : `${days} days ago`;
}

// A time in a narrow column: the hour and minute when it is today, else the short date
// too; the whole local time on hover.
export function shortTime(iso) {
  const at = new Date(iso);
  const clock = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const text = at.toDateString() === new Date().toDateString()
    ? clock : `${at.toLocaleDateString([], { dateStyle: "short" })} ${clock}`;
  const node = document.createElement("time");
  node.dateTime = iso;
  node.title = at.toLocaleString();
  node.textContent = text;
  return node;
}
