// One websocket per page for the facility in <body data-facility>: server events are
// re-dispatched by type; it reconnects with backoff (and the server then re-sends the
// sign-in prompts still pending).
import { el, slug, toast } from "./api.js";

const bus = new EventTarget();
let socket = null;
let delay = 500;
let refused = false;  // opened at an origin the server never accepts: retrying cannot help
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

function connect() {
  if (!slug) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws?facility=${encodeURIComponent(slug)}`);
  socket.addEventListener("message", (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    if (message.type === "hello") { delay = 500; resolveReady(); }
    if (message.type === "error" && message.code === "forbidden_origin") {
      // Nothing live works at this address: say so until the person moves, with the way.
      refused = true;
      const there = message.public_url && `${message.public_url}${location.pathname}${location.search}`;
      toast(there ? ["Live updates do not work at this address. ",
        el("a", { href: there, text: `Open ${message.public_url}` }), " instead."]
        : message.message, "error", { lasting: true });
    }
    bus.dispatchEvent(new CustomEvent(message.type, { detail: message }));
  });
  socket.addEventListener("close", () => {
    if (refused) return;
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 10000);
  });
}

connect();
