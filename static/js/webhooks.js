// Management page: register and remove webhook endpoints; the secret is shown once.
import { api, el, showError, slug, toast } from "./api.js";
import { localTimes, untilText } from "./elapsed.js";

const table = document.getElementById("webhook-endpoints");
const none = document.getElementById("no-webhooks");
const secret = document.getElementById("webhook-secret");

// The list and "No endpoints yet." follow each change without a reload.
function showList() {
  const empty = !table.tBodies[0].rows.length;
  table.hidden = empty;
  none.hidden = !empty;
}

const form = document.getElementById("add-webhook");
if (form) {
  const error = form.querySelector(".form-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const events = [...form.querySelectorAll('input[name="events"]:checked')].map((box) => box.value);
    if (!events.length) { showError(error, "Tick at least one event to send."); return; }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const created = await api("POST", `/api/f/${slug}/webhooks`, { url: form.elements.url.value.trim(), events });
      secret.querySelector(".secret-url").textContent = created.url;
      secret.querySelector(".secret").textContent = created.secret;
      secret.dataset.endpointId = created.id;
      secret.hidden = false;
      const remove = el("button", { type: "button", class: "link remove-webhook", text: "Remove" });
      remove.addEventListener("click", () => removeRow(remove));
      table.tBodies[0].append(
        el("tr", { "data-endpoint-id": created.id, "data-url": created.url },
          el("td", { "data-label": "URL" }, el("code", { class: "wrap-anywhere", text: created.url })),
          el("td", { "data-label": "Events", text: created.events.join(", ") }), el("td", { "data-label": "" }, remove)));
      showList();
      showError(error, "");
      form.reset();
    } catch (failure) { showError(error, failure.message); }
    finally { button.disabled = false; }
  });
}

// Removing cannot be undone (a new endpoint gets a new secret), so it asks first.
async function removeRow(button) {
  const row = button.closest("tr");
  if (!confirm(`Remove the endpoint ${row.dataset.url}? Scriptbox stops sending to it and forgets its delivery log.`)) return;
  button.disabled = true;
  try {
    await api("DELETE", `/api/f/${slug}/webhooks/${row.dataset.endpointId}`);
  } catch (failure) { button.disabled = false; toast(failure.message, "error"); return; }
  row.remove();
  // Its deliveries went with it.
  for (const sent of document.querySelectorAll(`#webhook-deliveries tr[data-endpoint-id="${row.dataset.endpointId}"]`)) sent.remove();
  if (secret.dataset.endpointId === row.dataset.endpointId) secret.hidden = true;
  showList();
  toast("Endpoint removed", "ok");
}
for (const button of document.querySelectorAll(".remove-webhook")) {
  button.addEventListener("click", () => removeRow(button));
}

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
const deliveries = document.getElementById("webhook-deliveries");
if (deliveries) {
  localTimes(deliveries);
  nextTryTimes(deliveries);
  nextTryIn(deliveries);
  setInterval(() => nextTryIn(deliveries), 15000);
}
