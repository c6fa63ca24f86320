// Sign-in prompts (DESIGN §4): shown on every page of the facility; Sign in opens the
// sign-in window from the click itself (browsers block windows opened from a websocket
// message), with a same-tab link when the window is blocked; the outcome comes from the
// server over the websocket, never from the sign-in window.
import { api, el, slug, toast } from "./api.js";
import { on, send } from "./ws.js";

const box = document.getElementById("prompts");
const prompts = new Map();

function render(message) {
  if (prompts.has(message.grant_id)) return;
  const account = message.label ? ` (account “${message.label}”)` : "";
  const reasons = {
    needs_reauth: " Your earlier sign-in has expired.",
    master_needs_reauth: ` The facility's ${message.integration.name} account must be signed in again by an admin; until then the script needs your own.`,
  };
  const reason = reasons[message.reason] ?? "";
  const fallback = el("a", { class: "grant-fallback", href: message.sign_in_url, hidden: true, text: "Open sign-in here" });
  const signIn = el("button", { class: "grant-sign-in primary", type: "button", text: "Sign in" });
  const refuse = el("button", { class: "grant-refuse", type: "button", text: "Refuse" });
  const text = el("p", {},
    // "Weekly report", or the server's "Your editor script" / "A script" for runs of no saved script.
    el("strong", { text: message.script }), " wants to use ",
    el("strong", { text: message.integration.name }), ` with your account${account}.${reason}`);
  const node = el("div", { class: "grant-prompt", role: "alertdialog", "data-grant-id": message.grant_id },
    text, el("div", { class: "row" }, signIn, refuse, fallback));
  signIn.addEventListener("click", () => {
    const popup = window.open(message.sign_in_url, `scriptbox-sign-in-${message.grant_id}`, "width=540,height=720");
    if (!popup) {
      fallback.hidden = false;
      toast("Your browser blocked the sign-in window; use the link instead.", "warn");
    }
  });
  refuse.addEventListener("click", async () => {
    refuse.disabled = true;
    if (!send({ type: "grant.refuse", grant_id: message.grant_id })) {
      try { await api("POST", `/api/f/${slug}/grants/${message.grant_id}/refuse`); }
      catch (error) { toast(error.message, "error"); refuse.disabled = false; }
    }
  });
  prompts.set(message.grant_id, node);
  box.append(node);
}

on("grant.required", render);
on("grant.resolved", (message) => {
  const node = prompts.get(message.grant_id);
  if (node) { node.remove(); prompts.delete(message.grant_id); }
  const words = { granted: "Connected — the script continues.", refused: "Refused.", expired: "The sign-in prompt expired.", cancelled: "The run was cancelled." };
  toast(words[message.state] ?? message.state, message.state === "granted" ? "ok" : "info");
});
