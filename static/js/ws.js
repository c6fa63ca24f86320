// One websocket per page for the facilities in <body data-facilities> (the page's own, or
// on a page of none, such as Settings, every facility of the user's): server events are
// re-dispatched by type; it reconnects with backoff (and the server then re-sends the
// sign-in prompts still pending).
import { el, toast } from "./api.js";

const facilities = (document.body.dataset.facilities ?? "").split(" ").filter(Boolean);

const bus = new EventTarget();
let socket = null;
let delay = 500;
let refused = false;  // the server said why it will not serve this page: retrying cannot help
let connected = false;  // ever: a page that never got through says nothing of reconnecting
let lost = null;  // the "reconnecting" notice, or the timer before it is shown
const LOST_AFTER_MS = 2000;  // a restart or a blip reconnects quicker than this, unsaid
let resolveReady;
export const ready = new Promise((resolve) => { resolveReady = resolve; });

export function on(type, handler) {
  bus.addEventListener(type, (event) => handler(event.detail));
}

export function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(message));
    return true;
  }
  return false;
}

// The socket is down no more (back, or refused for good): the "reconnecting" notice goes;
// whether it had been shown.
function found() {
  if (lost?.timer) clearTimeout(lost.timer);
  const shown = Boolean(lost?.notice);
  lost?.notice?.remove();
  lost = null;
  return shown;
}

function losing() {
  if (!connected || lost) return;
  lost = { timer: setTimeout(() => {
    lost = { notice: toast("Connection to Scriptbox lost; reconnecting…", "warn", { lasting: true }) };
  }, LOST_AFTER_MS) };
}

// The server will not serve this page (signed out, removed from the facility, too many
// pages, another address): nothing live works until the person acts, so say so and how.
function refusedBy(message) {
  refused = true;
  found();
  if (message.code === "forbidden_origin" && message.public_url) {
    const there = `${message.public_url}${location.pathname}${location.search}`;
    toast(["Live updates do not work at this address. ",
      el("a", { href: there, text: `Open ${message.public_url}` }), " instead."],
    "error", { lasting: true });
    return;
  }
  const reload = el("button", { type: "button", class: "link", text: "Reload" });
  reload.addEventListener("click", () => location.reload());
  toast([`Live updates stopped: ${message.message}. `, reload], "error", { lasting: true });
}

function connect() {
  if (!facilities.length) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams(facilities.map((facility) => ["facility", facility]));
  socket = new WebSocket(`${scheme}://${location.host}/ws?${query}`);
  socket.addEventListener("open", () => { connected = true; });
  socket.addEventListener("message", (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    if (message.type === "hello") {
      delay = 500;
      if (found()) toast("Reconnected", "ok");
      resolveReady();
    }
    if (message.type === "error" && message.closing) refusedBy(message);
    bus.dispatchEvent(new CustomEvent(message.type, { detail: message }));
  });
  socket.addEventListener("close", () => {
    if (refused) return;
    losing();
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 10000);
  });
}

connect();
