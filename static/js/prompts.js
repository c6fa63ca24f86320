// Sign-in prompts (DESIGN §4): shown on every page of the facility, and on pages of no one
// facility (Settings) for every facility of the user's; Sign in opens the
// sign-in window from the click itself (browsers block windows opened from a websocket
// message), with a same-tab link when the window is blocked. A success comes from the
// server over the websocket, never from the sign-in window. A sign-in declined or failed
// at the provider leaves the prompt pending (the run still waits), so the window says so
// to this page (sign-in-window.js), which closes it and offers the two ways on: try again
// or refuse. On a phone a prompt is a one-line bar that opens for its details.
//
// A prompt is a notification, not a modal: Later (or Escape inside it) hides it on this
// page without answering, and "N sign-ins waiting" brings it back; the run waits on until
// the prompt is answered or expires (Refuse is the only way to say no). A new prompt is
// always announced; it takes the keyboard only from nowhere (the page's body) or from the
// controls of the run that asks, never from a field or editor being typed in.
import { api, el, slug, toast } from "./api.js";
import { watchSignIn } from "./sign-in-window.js";
import { on, send } from "./ws.js";

const box = document.getElementById("prompts");
const news = document.getElementById("prompt-news");
const prompts = new Map();  // grant id -> { node, signIn, stop, held, later, runId, returnTo }
// Prompts this tab has shown already (another page of it, before a reload): sent again when
// a page connects, they are shown but do not take the keyboard a second time.
const SEEN = "scriptbox.prompts-seen";
// Where the keyboard came from into the prompts: a prompt that goes while it holds the focus
// (Refuse pressed, a sign-in done, Later) gives it to the next prompt or back there, not to
// the page's top, where Tab would start over.
let cameFrom = null;
box.addEventListener("focusin", (event) => {
  if (event.relatedTarget && !box.contains(event.relatedTarget)) cameFrom = event.relatedTarget;
});
// The prompts hidden by Later, as one small control at the same place: it shows them again.
const waiting = el("button", { class: "prompts-waiting", type: "button", hidden: true });
waiting.addEventListener("click", showHidden);
box.prepend(waiting);

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
  // Where Sign in sends the person (an OAuth sign-in goes straight there): said before the press.
  const where = destination(message.destination, `${id}-where`);
  const signIn = el("button", { class: "grant-sign-in primary", type: "button", text: "Sign in", "aria-describedby": where && where.id });
  const refuse = el("button", { class: "grant-refuse", type: "button", text: "Refuse" });
  const later = el("button", { class: "grant-later", type: "button", text: "Later", "aria-describedby": `${id}-later` });
  // A phone shows one line until it is opened: this, Sign in, Refuse and Later.
  const summary = el("button", { class: "grant-summary", type: "button", "aria-expanded": "false", "aria-controls": `${id}-details` },
    el("strong", { text: message.label ? `${service} (${message.label})` : service }), ` for ${message.script}`);
  const sentence = `${message.script} wants to use ${service} with your account${account}.${reason}`;
  const text = el("p", { class: "grant-text", id: `${id}-text` },
    // "Weekly report", or the server's "Your editor script" / "A script" for runs of no saved script.
    el("strong", { text: message.script }), " wants to use ",
    el("strong", { text: service }), ` with your account${account}.${reason}`);
  // Why a person with the service connected under a label is asked again (the server's words).
  const note = message.account_note ? el("p", { class: "grant-account-note", text: message.account_note }) : null;
  const failure = el("p", { class: "grant-failure error", role: "alert", hidden: true });
  const next = el("p", { class: "grant-next", hidden: true },
    el("strong", { text: message.script }), " is still waiting: try again, or refuse and the script is told you declined.");
  const laterHint = el("span", { class: "visually-hidden", id: `${id}-later`, text: `Hides this without answering; ${message.script} waits until ${until(message)}.` });
  const details = el("div", { class: "grant-details", id: `${id}-details` }, text, ...(note ? [note] : []), ...(where ? [where] : []), failure, next);
  const node = el("div", { class: "grant-prompt", role: "alertdialog", "aria-labelledby": `${id}-text`, "data-grant-id": message.grant_id },
    summary, details, el("div", { class: "row wrap grant-actions" }, signIn, fallback, refuse, later), laterHint);
  const entry = { node, signIn, stop: () => {}, held: false, later: false, runId: message.run_id, returnTo: null };
  // Refuse, disabled once pressed, drops the focus to nowhere (no relatedTarget): still held.
  node.addEventListener("focusin", () => { entry.held = true; });
  node.addEventListener("focusout", (event) => { if (event.relatedTarget) entry.held = false; });
  // Escape is "not now", as for any notification: never Refuse, which fails the script's call.
  node.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.defaultPrevented) return;
    event.preventDefault();
    hide(entry, message);
  });
  later.addEventListener("click", () => hide(entry, message));
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
    show(entry);
    expand(true);
    window.focus();
    signIn.focus();
  };
  signIn.addEventListener("click", () => {
    const popup = window.open(message.sign_in_url, `scriptbox-sign-in-${message.grant_id}`, "width=540,height=720");
    if (!popup) {
      fallback.hidden = false;
      toast("Your browser blocked the sign-in window; use the link instead.", "warn");
      fallback.focus();  // the way on is there now
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
      // The prompt's own facility: a page of several (Settings) shows theirs all.
      try { await api("POST", `/api/f/${message.facility ?? slug}/grants/${message.grant_id}/refuse`); }
      catch (error) { toast(error.message, "error"); refuse.disabled = false; }
    }
  });
  const takeFocus = mayTakeFocus(message) && !seen(message.grant_id);
  prompts.set(message.grant_id, entry);
  box.append(node);
  keepClear();
  say(`Sign-in needed: ${sentence} Sign in or Refuse at the top of the page.`);
  if (takeFocus) {
    entry.returnTo = document.activeElement === document.body ? null : document.activeElement;
    signIn.focus();
  }
}

// Where the sign-in goes, as the sign-in form says it (_secret_destination.html): the origin
// of the provider's sign-in page, and those the credential is sent to. An admin chooses them.
function destination(where, id) {
  if (!where) return null;
  const origin = (text) => el("strong", { class: "wrap-anywhere", text });
  const origins = where.used_at.flatMap((text, i, all) =>
    [...(i === 0 ? [] : [i === all.length - 1 ? " and " : ", "]), origin(text)]);
  if (!where.sign_in_at) return el("p", { class: "grant-destination", id }, "The sign-in form sends what you enter only to ", ...origins, ".");
  const usedAt = origins.length ? ["; scripts then use the access you grant at ", ...origins] : [];
  return el("p", { class: "grant-destination", id }, "You will sign in at ", origin(where.sign_in_at), ...usedAt, ".");
}

// When the prompt's run gives up waiting: its expiry, in the reader's clock.
function until(message) {
  const when = new Date(message.expires_at);
  return Number.isNaN(when.getTime()) ? "the prompt expires"
    : when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// The keyboard is the person's: a prompt takes it only from nowhere, or from the button
// (Run, Stop) of the run that asks, which pages mark with data-run-id.
function mayTakeFocus(message) {
  const active = document.activeElement;
  if (!active || active === document.body) return true;
  return active.tagName === "BUTTON" && message.run_id != null && active.dataset.runId === String(message.run_id);
}

// Whether this tab showed the prompt before, and from now on it has.
function seen(grantId) {
  let ids = [];
  try { ids = JSON.parse(sessionStorage.getItem(SEEN) ?? "[]"); } catch { ids = []; }
  if (ids.includes(grantId)) return true;
  sessionStorage.setItem(SEEN, JSON.stringify([...ids, grantId].slice(-50)));
  return false;
}

// Said by a screen reader wherever the focus is (the prompts box itself is not a live
// region: it would read every button, and again when a prompt hides).
function say(words) {
  if (!news) return;
  // The same words twice (two prompts alike) must still be said: they differ by a space.
  news.textContent = news.textContent === words ? `${words}\u00a0` : words;
}

function hide(entry, message) {
  const held = entry.node.contains(document.activeElement);
  entry.later = true;
  entry.node.hidden = true;
  countHidden();
  keepClear();
  // Said, not a toast: on a phone a toast covers the control the focus goes back to.
  say(`Hidden: ${message.script} waits for your sign-in until ${until(message)}. “${waiting.textContent}” at the top of the page shows it again.`);
  if (held) giveFocusBack(entry);
}

function show(entry) {
  entry.later = false;
  entry.node.hidden = false;
  countHidden();
}

function showHidden() {
  const shown = [...prompts.values()].filter((entry) => entry.later);
  shown.forEach(show);
  keepClear();
  shown[0]?.signIn.focus();
}

function countHidden() {
  const n = [...prompts.values()].filter((entry) => entry.later).length;
  const held = document.activeElement === waiting;
  waiting.textContent = `${n} sign-in${n === 1 ? "" : "s"} waiting`;
  waiting.hidden = n === 0;
  if (held && n === 0) giveFocusBack(null);
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
    entry.stop(); entry.node.remove(); prompts.delete(message.grant_id);
    countHidden(); keepClear();
    if (held) giveFocusBack(entry);
  }
  const words = { granted: "Connected — the script continues.", refused: "Refused.", expired: "The sign-in prompt expired.", cancelled: "The run was cancelled." };
  toast(words[message.state] ?? message.state, message.state === "granted" ? "ok" : "info");
});

// After a prompt goes or hides: the next prompt shown, else where the keyboard was before
// the prompt took it or Tab brought it in, else the asking run's own button, else the
// hidden prompts' control.
function giveFocusBack(entry) {
  const usable = (node) => node?.isConnected && !node.disabled && node.getClientRects().length > 0;
  const runButtons = entry?.runId != null ? [...document.querySelectorAll(`button[data-run-id="${CSS.escape(String(entry.runId))}"]`)] : [];
  const next = box.querySelector(".grant-prompt:not([hidden]) .grant-sign-in");
  const target = [next, entry?.returnTo, cameFrom, ...runButtons, waiting].find(usable);
  if (target) { target.focus(); return; }
  // Nothing to go back to: the page's content, focusable only while it holds the focus.
  const main = document.querySelector("main");
  main.tabIndex = -1;
  main.addEventListener("blur", () => main.removeAttribute("tabindex"), { once: true });
  main.focus({ preventScroll: true });
}
