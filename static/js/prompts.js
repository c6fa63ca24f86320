// Sign-in prompts (DESIGN §4): shown on every page of the facility; Sign in opens the
// sign-in window from the click itself (browsers block windows opened from a websocket
// message), with a same-tab link when the window is blocked. A success comes from the
// server over the websocket, never from the sign-in window. A sign-in declined or failed
// at the provider leaves the prompt pending (the run still waits), so the window says so
// to this page (sign-in-window.js), which closes it and offers the two ways on: try again
// or refuse. On a phone a prompt is a one-line bar that opens for its details.
import { api, el, slug, toast } from "./api.js";
import { watchSignIn } from "./sign-in-window.js";
import { on, send } from "./ws.js";

const box = document.getElementById("prompts");
const prompts = new Map();  // grant id -> { node, stop, held }: stop following its sign-in window
// Where the keyboard came from into the prompts: a prompt that goes while it holds the focus
// (Refuse pressed, a sign-in done) gives it to the next prompt or back there, not to the
// page's top, where Tab would start over.
let cameFrom = null;
box.addEventListener("focusin", (event) => {
  if (event.relatedTarget && !box.contains(event.relatedTarget)) cameFrom = event.relatedTarget;
});

function render(message) {
  if (prompts.has(message.grant_id)) return;
  const service = message.integration.name;
  const account = message.label ? ` (account “${message.label}”)` : "";
  const reasons = {
    needs_reauth: " Your earlier sign-in has expired.",
    master_needs_reauth: ` The facility's ${service} account must be signed in again by an admin; until then the script needs your own.`,
  };
  const reason = reasons[message.reason] ?? "";
  const id = `grant-${message.grant_id}`;
  const fallback = el("a", { class: "grant-fallback", href: message.sign_in_url, hidden: true, text: "Open sign-in here" });
  const signIn = el("button", { class: "grant-sign-in primary", type: "button", text: "Sign in" });
  const refuse = el("button", { class: "grant-refuse", type: "button", text: "Refuse" });
  // A phone shows one line until it is opened: this, Sign in and Refuse.
  const summary = el("button", { class: "grant-summary", type: "button", "aria-expanded": "false", "aria-controls": `${id}-details` },
    el("strong", { text: message.label ? `${service} (${message.label})` : service }), ` for ${message.script}`);
  const text = el("p", { class: "grant-text", id: `${id}-text` },
    // "Weekly report", or the server's "Your editor script" / "A script" for runs of no saved script.
    el("strong", { text: message.script }), " wants to use ",
    el("strong", { text: service }), ` with your account${account}.${reason}`);
  const failure = el("p", { class: "grant-failure error", role: "alert", hidden: true });
  const next = el("p", { class: "grant-next", hidden: true },
    el("strong", { text: message.script }), " is still waiting: try again, or refuse and the script is told you declined.");
  const details = el("div", { class: "grant-details", id: `${id}-details` }, text, failure, next);
  const node = el("div", { class: "grant-prompt", role: "alertdialog", "aria-labelledby": `${id}-text`, "data-grant-id": message.grant_id },
    summary, details, el("div", { class: "row wrap grant-actions" }, signIn, refuse, fallback));
  const entry = { node, stop: () => {}, held: false };
  // Refuse, disabled once pressed, drops the focus to nowhere (no relatedTarget): still held.
  node.addEventListener("focusin", () => { entry.held = true; });
  node.addEventListener("focusout", (event) => { if (event.relatedTarget) entry.held = false; });
  const expand = (open) => {
    node.classList.toggle("expanded", open);
    summary.setAttribute("aria-expanded", String(open));
    keepClear();
  };
  summary.addEventListener("click", () => expand(!node.classList.contains("expanded")));
  // The grant is still pending: nothing was connected, and the run waits on.
  const failed = (words) => {
    failure.textContent = words;
    failure.hidden = next.hidden = false;
    signIn.textContent = "Try again";
    expand(true);
    window.focus();
    signIn.focus();
  };
  signIn.addEventListener("click", () => {
    const popup = window.open(message.sign_in_url, `scriptbox-sign-in-${message.grant_id}`, "width=540,height=720");
    if (!popup) {
      fallback.hidden = false;
      toast("Your browser blocked the sign-in window; use the link instead.", "warn");
      return;
    }
    failure.hidden = next.hidden = true;
    keepClear();
    entry.stop();  // the same window again, when it was still open
    entry.stop = watchSignIn(popup, { failed });
  });
  refuse.addEventListener("click", async () => {
    refuse.disabled = true;
    if (!send({ type: "grant.refuse", grant_id: message.grant_id })) {
      try { await api("POST", `/api/f/${slug}/grants/${message.grant_id}/refuse`); }
      catch (error) { toast(error.message, "error"); refuse.disabled = false; }
    }
  });
  prompts.set(message.grant_id, entry);
  box.append(node);
  keepClear();
}

// The prompts stay in view while the page scrolls (sticky): whatever a person scrolls or
// tabs to lands below them, not under them (app.css: scroll-padding-top). Kept at once when
// a prompt comes, opens, closes or goes, and on any other change of size (a turned phone).
function keepClear() {
  const height = box.offsetHeight;
  document.documentElement.style.setProperty("--prompts-height", height ? `${height + 8}px` : "0px");
}
new ResizeObserver(keepClear).observe(box);

on("grant.required", render);
on("grant.resolved", (message) => {
  const entry = prompts.get(message.grant_id);
  if (entry) {
    const held = entry.node.contains(document.activeElement) || (entry.held && document.activeElement === document.body);
    entry.stop(); entry.node.remove(); prompts.delete(message.grant_id); keepClear();
    if (held) giveFocusBack();
  }
  const words = { granted: "Connected — the script continues.", refused: "Refused.", expired: "The sign-in prompt expired.", cancelled: "The run was cancelled." };
  toast(words[message.state] ?? message.state, message.state === "granted" ? "ok" : "info");
});

function giveFocusBack() {
  const usable = (node) => node?.isConnected && !node.disabled && node.getClientRects().length > 0;
  const next = box.querySelector(".grant-sign-in");
  if (next || usable(cameFrom)) { (next ?? cameFrom).focus(); return; }
  // Nothing to go back to: the page's content, focusable only while it holds the focus.
  const main = document.querySelector("main");
  main.tabIndex = -1;
  main.addEventListener("blur", () => main.removeAttribute("tabindex"), { once: true });
  main.focus({ preventScroll: true });
}
