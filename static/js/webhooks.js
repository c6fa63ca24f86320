// Management page: webhook endpoints (add, edit, pause or resume, send a test event, rotate
// the secret, remove; a secret is shown once) and the delivery log (a delivery's attempts,
// redeliver one that ended).
import { api, copyOnClick, el, showError, slug, toast } from "./api.js";
import { localTimes, untilText } from "./elapsed.js";

const section = document.getElementById("webhooks");
const table = document.getElementById("webhook-endpoints");
const none = document.getElementById("no-webhooks");
const secret = document.getElementById("webhook-secret");
const editForm = document.getElementById("edit-webhook");
const base = `/api/f/${slug}/webhooks`;

// A button disabled while its request runs loses the keyboard's focus (Chromium moves it
// to the page's body, and Tab starts again from the top bar): `busy` disables it and
// returns what enables it again, with the focus back on it if it held it and nothing else
// took it meanwhile.
function busy(button) {
  const held = document.activeElement === button;
  button.disabled = true;
  return () => {
    button.disabled = false;
    if (held && document.activeElement === document.body) button.focus();
  };
}

// The list and "No endpoints yet." follow each change without a reload.
function showList() {
  const empty = !table.tBodies[0].rows.length;
  table.hidden = empty;
  none.hidden = !empty;
}

function showSecret(endpoint, kind) {
  secret.querySelector(".secret-kind").textContent = kind;
  secret.querySelector(".secret-url").textContent = endpoint.url;
  secret.querySelector(".secret").textContent = endpoint.secret;
  secret.dataset.endpointId = endpoint.id;
  secret.hidden = false;
}

// A secret holds '-' and '_': a double-click selected only the piece between two hyphens,
// and a receiver set up with that piece refused every delivery. The button copies it all.
copyOnClick(secret?.querySelector(".copy-secret"), secret?.querySelector(".secret"), "secret");

function stateBadge(active) {
  return active ? el("span", { class: "badge ok", text: "active" }) : el("span", { class: "badge warn", text: "paused" });
}

// A new endpoint's row, as manage.html draws the others.
function endpointRow(endpoint) {
  const button = (name, text) => el("button", { type: "button", class: `link ${name}`, text });
  const actions = [button("edit-webhook", "Edit"), button("pause-webhook", "Pause"),
    button("test-webhook", "Send test"), button("rotate-webhook", "Rotate secret"), button("remove-webhook", "Remove")];
  return el("tr", { "data-endpoint-id": endpoint.id, "data-url": endpoint.url, "data-events": endpoint.events.join(","), "data-active": "true" },
    el("td", { "data-label": "URL" }, el("code", { class: "wrap-anywhere endpoint-url", text: endpoint.url })),
    el("td", { "data-label": "Events", class: "endpoint-events", text: endpoint.events.join(", ") }),
    el("td", { "data-label": "State", class: "endpoint-state" }, stateBadge(true)),
    el("td", { "data-label": "", class: "row wrap" }, ...actions.flatMap((node) => [node, " "])));
}

// A row's cells follow the endpoint as the server now has it.
function showEndpoint(row, endpoint) {
  row.dataset.url = endpoint.url;
  row.dataset.events = endpoint.events.join(",");
  row.dataset.active = String(endpoint.active);
  row.querySelector(".endpoint-url").textContent = endpoint.url;
  row.querySelector(".endpoint-events").textContent = endpoint.events.join(", ");
  row.querySelector(".endpoint-state").replaceChildren(stateBadge(endpoint.active));
  row.querySelector(".pause-webhook").textContent = endpoint.active ? "Pause" : "Resume";
}

const form = document.getElementById("add-webhook");
if (form) {
  const error = form.querySelector(".form-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const events = [...form.querySelectorAll('input[name="events"]:checked')].map((box) => box.value);
    if (!events.length) { showError(error, "Tick at least one event to send."); return; }
    const done = busy(form.querySelector("button[type=submit]"));
    try {
      const created = await api("POST", base, { url: form.elements.url.value.trim(), events });
      showSecret(created, "signing secret");
      table.tBodies[0].append(endpointRow(created));
      showList();
      showError(error, "");
      form.reset();
    } catch (failure) { showError(error, failure.message); }
    finally { done(); }
  });
}

// Editing: the one edit form moves under the endpoint's row, filled with what it has now.
function closeEdit() {
  const holder = editForm.closest("tr.edit-row");
  editForm.hidden = true;
  section.append(editForm);
  holder?.remove();
}

function openEdit(row) {
  closeEdit();
  const holder = el("tr", { class: "edit-row", "data-for": row.dataset.endpointId }, el("td", { colspan: "4" }));
  row.after(holder);
  holder.firstChild.append(editForm);
  editForm.elements.url.value = row.dataset.url;
  const events = row.dataset.events.split(",");
  for (const box of editForm.querySelectorAll('input[name="events"]')) box.checked = events.includes(box.value);
  showError(editForm.querySelector(".form-error"), "");
  editForm.hidden = false;
  editForm.elements.url.focus();
}

editForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = editForm.querySelector(".form-error");
  const id = editForm.closest("tr.edit-row").dataset.for;
  const row = table.querySelector(`tr[data-endpoint-id="${id}"]`);
  const events = [...editForm.querySelectorAll('input[name="events"]:checked')].map((box) => box.value);
  if (!events.length) { showError(error, "Tick at least one event to send."); return; }
  const done = busy(editForm.querySelector("button[type=submit]"));
  let saved = false;
  try {
    const changed = await api("PATCH", `${base}/${id}`, { url: editForm.elements.url.value.trim(), events });
    showEndpoint(row, changed);
    closeEdit();
    saved = true;
    toast("Endpoint saved", "ok");
  } catch (failure) { showError(error, failure.message); }
  finally { done(); }
  // The form is gone with its button: back to the endpoint's Edit.
  if (saved && document.activeElement === document.body) row.querySelector(".edit-webhook").focus();
});
editForm?.querySelector(".cancel-edit").addEventListener("click", () => {
  const id = editForm.closest("tr.edit-row")?.dataset.for;
  closeEdit();
  table.querySelector(`tr[data-endpoint-id="${id}"] .edit-webhook`)?.focus();
});

// Removing cannot be undone (a new endpoint gets a new secret), so it asks first.
async function removeRow(row, button) {
  if (!confirm(`Remove the endpoint ${row.dataset.url}? Scriptbox stops sending to it and forgets its delivery log.`)) return;
  const done = busy(button);
  try {
    await api("DELETE", `${base}/${row.dataset.endpointId}`);
  } catch (failure) { done(); toast(failure.message, "error"); return; }
  // The keyboard goes on to the next endpoint's Remove (else the one before), or to the
  // form that adds one.
  const neighbour = [row.nextElementSibling, row.previousElementSibling]
    .find((other) => other?.dataset.endpointId);
  const focusNext = document.activeElement === document.body;
  if (editForm.closest(`tr.edit-row[data-for="${row.dataset.endpointId}"]`)) closeEdit();
  row.remove();
  // Its deliveries went with it.
  for (const sent of document.querySelectorAll(`#webhook-deliveries tr[data-endpoint-id="${row.dataset.endpointId}"]`)) sent.remove();
  if (secret.dataset.endpointId === row.dataset.endpointId) secret.hidden = true;
  showList();
  if (focusNext) (neighbour?.querySelector(".remove-webhook") ?? form?.elements.url)?.focus();
  toast("Endpoint removed", "ok");
}

async function togglePause(row, button) {
  const active = row.dataset.active !== "true";
  const done = busy(button);
  try {
    showEndpoint(row, await api("PATCH", `${base}/${row.dataset.endpointId}`, { active }));
    toast(active ? "Endpoint resumed: what waited is being sent" : "Endpoint paused: new events are not sent to it", "ok");
    if (active) followLog();
  } catch (failure) { toast(failure.message, "error"); }
  finally { done(); }
}

// The old secret stops at once, so it asks first; the new one is shown once, as on adding.
async function rotate(row, button) {
  if (!confirm(`Rotate the signing secret of ${row.dataset.url}? The old secret stops working at once: the receiver must check with the new one.`)) return;
  const done = busy(button);
  try {
    showSecret(await api("POST", `${base}/${row.dataset.endpointId}/rotate-secret`), "new signing secret");
  } catch (failure) { toast(failure.message, "error"); }
  finally { done(); }
}

async function sendTest(row, button) {
  const done = busy(button);
  try {
    const sent = await api("POST", `${base}/${row.dataset.endpointId}/test`);
    toast("Test event sent: see Recent deliveries", "ok");
    followLog(sent.id);
  } catch (failure) { toast(failure.message, "error"); }
  finally { done(); }
}

table?.addEventListener("click", (event) => {
  const button = event.target.closest("button");
  const row = button?.closest("tr[data-endpoint-id]");
  if (!row) return;
  if (button.classList.contains("edit-webhook")) openEdit(row);
  else if (button.classList.contains("pause-webhook")) togglePause(row, button);
  else if (button.classList.contains("test-webhook")) sendTest(row, button);
  else if (button.classList.contains("rotate-webhook")) rotate(row, button);
  else if (button.classList.contains("remove-webhook")) removeRow(row, button);
});

// The delivery log's times in the browser's local time, as other pages show times. A next
// try today shows its time of day; one on another day shows its date too (a bare "03:12:40"
// read as today when the retry was the next day's), date and time apart so that the column
// may wrap between them rather than push the table past the card.
function nextTryTimes(root) {
  const today = new Date().toDateString();
  for (const node of root.querySelectorAll("time.next-try[datetime]")) {
    const at = new Date(node.getAttribute("datetime"));
    if (at.toDateString() === today) node.textContent = at.toLocaleTimeString();
    else {
      node.replaceChildren(el("span", { class: "nowrap", text: at.toLocaleDateString() }), " ",
        el("span", { class: "nowrap", text: at.toLocaleTimeString() }));
    }
  }
}
// A retry's "attempt 4 of 8 next" says when: "attempt 4 of 8 in 2 min", kept current while
// the page stays open.
function nextTryIn(root) {
  for (const node of root.querySelectorAll(".next-try-in[data-at]")) {
    node.textContent = untilText(Date.parse(node.dataset.at) - Date.now());
  }
}
const log = document.getElementById("webhook-log");
function showTimes() {
  localTimes(log);
  nextTryTimes(log);
  nextTryIn(log);
}
if (log) {
  showTimes();
  setInterval(() => nextTryIn(log), 15000);
}

// The log's control the keyboard is on (`{id, name}`: a delivery's row and the button's
// class), to find again in a fresh copy of the log; a redelivery notes its button here as
// it disables it (the focus has then left it).
const LOG_BUTTONS = ["show-attempts", "redeliver"];
let logFocus = null;
function focusInLog() {
  const active = document.activeElement;
  const row = log.contains(active) ? active.closest("tr[data-delivery-id]") : null;
  const name = row && LOG_BUTTONS.find((known) => active.classList.contains(known));
  if (name) return { id: row.dataset.deliveryId, name };
  return active === document.body || !active ? logFocus : null;
}

// The log as the server draws it now (a fresh copy of this page), the attempts that were
// open opened again, and the keyboard on the control it was on (it fell to the page's top).
async function refreshLog() {
  const response = await fetch(location.href, { credentials: "same-origin" });
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html").getElementById("webhook-log");
  if (!fresh) return;
  const open = [...log.querySelectorAll(".show-attempts[aria-expanded=true]")].map((b) => b.closest("tr").dataset.deliveryId);
  const focused = focusInLog();
  log.replaceChildren(...fresh.childNodes);
  showTimes();
  for (const id of open) {
    const button = log.querySelector(`tr[data-delivery-id="${id}"] .show-attempts`);
    if (button) await showAttempts(button);
  }
  logFocus = null;
  if (!focused || !(document.activeElement === document.body || !document.activeElement)) return;
  const row = log.querySelector(`tr[data-delivery-id="${focused.id}"]`);
  (row?.querySelector(`.${focused.name}:not(:disabled)`) ?? row?.querySelector(".show-attempts"))?.focus();
}

// After a test, a redelivery or a resume the log follows what is sent for a while, until
// `deliveryId` (when given) is delivered or failed and nothing is being sent.
let following = 0;
async function followLog(deliveryId) {
  const mine = ++following;
  for (let round = 0; round < 40 && mine === following; round++) {
    await refreshLog();
    const row = deliveryId ? log.querySelector(`tr[data-delivery-id="${deliveryId}"]`) : null;
    const settled = (!deliveryId || (row && ["delivered", "failed"].includes(row.dataset.status)))
      && !log.querySelector("tr[data-sending]");
    if (settled && round > 0) return;
    await new Promise((done) => { setTimeout(done, 750); });
  }
}

// A delivery's attempts in a row under it: when each began, how long it took, the answer.
async function showAttempts(button) {
  const row = button.closest("tr");
  const open = row.nextElementSibling?.classList.contains("attempts-row") ? row.nextElementSibling : null;
  if (button.getAttribute("aria-expanded") === "true") {
    open?.remove();
    button.setAttribute("aria-expanded", "false");
    return;
  }
  let delivery;
  try {
    delivery = await api("GET", `${base}/${row.dataset.endpointId}/deliveries/${row.dataset.deliveryId}`);
  } catch (failure) { toast(failure.message, "error"); return; }
  const lines = delivery.attempt_log.map((attempt) => el("tr", {},
    el("td", { text: String(attempt.number) }),
    el("td", {}, el("time", { class: "local-time", datetime: attempt.started_at, text: attempt.started_at })),
    el("td", { text: attempt.duration_ms === null ? "" : `${attempt.duration_ms} ms` }),
    el("td", { text: attempt.response_code ? `HTTP ${attempt.response_code}` : "" }),
    el("td", { class: "muted", text: attempt.error ?? (attempt.response_code ? "" : "sending now") })));
  const detail = lines.length
    ? el("table", { class: "list attempts", "aria-label": `Attempts of delivery ${delivery.id}` },
      el("thead", {}, el("tr", {}, ...["Attempt", "Began", "Took", "Response", "Error"].map((text) => el("th", { text })))),
      el("tbody", {}, ...lines))
    : el("p", { class: "muted", text: "No attempt yet." });
  localTimes(detail);
  open?.remove();
  row.after(el("tr", { class: "attempts-row" }, el("td", { colspan: String(row.cells.length) }, detail)));
  button.setAttribute("aria-expanded", "true");
}

async function redeliver(button) {
  const row = button.closest("tr");
  if (document.activeElement === button) logFocus = { id: row.dataset.deliveryId, name: "redeliver" };
  const done = busy(button);
  try {
    const again = await api("POST", `${base}/${row.dataset.endpointId}/deliveries/${row.dataset.deliveryId}/redeliver`);
    toast("Sent again as a new delivery", "ok");
    followLog(again.id);
  } catch (failure) { logFocus = null; done(); toast(failure.message, "error"); }
}

log?.addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (button?.classList.contains("show-attempts")) showAttempts(button);
  else if (button?.classList.contains("redeliver")) redeliver(button);
});
