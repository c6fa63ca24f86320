// A provider sign-in opened in its own window, followed by the page that opened it: the
// master account on an integration's page (manage.js) and a member's own accounts in
// Settings (settings.js). The window says how the sign-in went (sign-in-result.js). A
// failure used to show only in that window, and closing it reloaded the page as if nothing
// had happened: it is said in `errorBox`, beside the button, and the window is closed.
// Anything else (a success, or the window closed by hand) reloads the page, which then
// shows the account as it now is.
import { showError } from "./api.js";

export function followSignIn(popup, errorBox) {
  let failed = false;
  const heard = (event) => {
    if (event.origin !== location.origin || event.source !== popup || event.data?.type !== "scriptbox.sign-in") return;
    if (event.data.ok) return;
    failed = true;
    showError(errorBox, event.data.message);
    popup.close();
  };
  window.addEventListener("message", heard);
  const timer = setInterval(() => {
    if (!popup.closed) return;
    clearInterval(timer);
    window.removeEventListener("message", heard);
    if (!failed) location.reload();
  }, 500);
}
