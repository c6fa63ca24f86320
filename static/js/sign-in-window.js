// A provider sign-in opened in its own window, followed by the page that opened it: the
// master account on an integration's page (manage.js), a member's own accounts in
// Settings (settings.js) and a sign-in prompt (prompts.js). The window says how the
// sign-in went (sign-in-result.js). A failure used to show only in that window, and
// closing it reloaded the page (or, for a prompt, changed nothing) as if nothing had
// happened: the opener says it where the person acts, and the window is closed.
import { showError } from "./api.js";

// Follow `popup`: `failed(message)` when it says the sign-in failed (the window is then
// closed), `closed(failed)` once the window is closed, by itself, by this page or by hand.
// A success is left to the caller: the prompt hears it from the server (DESIGN §4), since a
// provider's COOP header can cut the window from its opener. Returns `stop`, for a page
// that no longer cares (the prompt was answered elsewhere, or a new window replaces this).
export function watchSignIn(popup, { failed, closed = () => {} }) {
  let didFail = false;
  const heard = (event) => {
    if (event.origin !== location.origin || event.source !== popup || event.data?.type !== "scriptbox.sign-in") return;
    if (event.data.ok) return;
    didFail = true;
    failed(event.data.message);
    popup.close();
  };
  const stop = () => {
    clearInterval(timer);
    window.removeEventListener("message", heard);
  };
  window.addEventListener("message", heard);
  const timer = setInterval(() => {
    if (!popup.closed) return;
    stop();
    closed(didFail);
  }, 500);
  return stop;
}

// The account pages: a failure is said in `errorBox`, beside the button; anything else (a
// success, or the window closed by hand) reloads the page, which then shows the account as
// it now is.
export function followSignIn(popup, errorBox) {
  watchSignIn(popup, {
    failed: (message) => showError(errorBox, message),
    closed: (failed) => { if (!failed) location.reload(); },
  });
}
