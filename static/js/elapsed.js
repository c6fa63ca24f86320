// Live elapsed timers (<span class="elapsed" data-since="ISO">) and local times
// (<time class="local-time" datetime="ISO">) on server-rendered pages.
export function formatElapsed(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  const two = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

function tick() {
  for (const node of document.querySelectorAll(".elapsed[data-since]")) {
    node.textContent = `${formatElapsed(Date.now() - Date.parse(node.dataset.since))} so far`;
  }
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
