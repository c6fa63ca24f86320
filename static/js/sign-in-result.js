// The sign-in window tells the page that opened it how the sign-in went, so that page can
// say so where the person acts (the master account's page and Settings → Integrations show
// a failure beside the button that started it: sign-in-window.js). A success closes the
// window (browsers allow it for windows a script opened); the server also tells a waiting
// prompt over the websocket.
const card = document.querySelector(".signed-in");
const ok = card.dataset.ok === "true";
if (window.opener && !window.opener.closed) {
  const message = card.querySelector(".sign-in-message").textContent;
  window.opener.postMessage({ type: "scriptbox.sign-in", ok, message }, location.origin);
}
if (ok) setTimeout(() => window.close(), 1200);
