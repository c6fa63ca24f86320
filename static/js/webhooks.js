// Management page: register and remove webhook endpoints; the secret is shown once.
import { api, el, showError, slug } from "./api.js";

const form = document.getElementById("add-webhook");
if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const events = [...form.querySelectorAll('input[name="events"]:checked')].map((box) => box.value);
    try {
      const created = await api("POST", `/api/f/${slug}/webhooks`, { url: form.elements.url.value.trim(), events });
      const notice = document.getElementById("webhook-secret");
      notice.querySelector("code").textContent = created.secret;
      notice.hidden = false;
      const remove = el("button", { type: "button", class: "link remove-webhook", text: "Remove" });
      remove.addEventListener("click", () => removeRow(remove));
      document.querySelector("#webhook-endpoints tbody").append(
        el("tr", { "data-endpoint-id": created.id },
          el("td", {}, el("code", { text: created.url })), el("td", { text: created.events.join(", ") }), el("td", {}, remove)));
      showError(form.querySelector(".form-error"), "");
      form.reset();
    } catch (error) { showError(form.querySelector(".form-error"), error.message); }
  });
}
async function removeRow(button) {
  const row = button.closest("tr");
  await api("DELETE", `/api/f/${slug}/webhooks/${row.dataset.endpointId}`);
  row.remove();
}
for (const button of document.querySelectorAll(".remove-webhook")) {
  button.addEventListener("click", () => removeRow(button));
}
