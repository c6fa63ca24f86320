// Settings: connect and disconnect your own accounts per facility; API tokens.
import { api, disconnectAccount, showError, toast } from "./api.js";

for (const section of document.querySelectorAll(".facility-section")) {
  const facility = section.dataset.facility;
  for (const row of section.querySelectorAll(".integration-row")) {
    const form = row.querySelector(".add-account");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { label: form.elements.label.value.trim(), fields: {}, parameters: {} };
      for (const input of form.querySelectorAll("input")) {
        if (input.name === "label") continue;
        if (input.name.startsWith("param_")) body.parameters[input.name.slice(6)] = input.value;
        else body.fields[input.name] = input.value;
      }
      const oauth = row.dataset.authMode === "oauth2";
      const popup = oauth ? window.open("", `scriptbox-connect-${row.dataset.key}`, "width=540,height=720") : null;
      try {
        const answer = await api("POST", `/api/f/${facility}/integrations/${row.dataset.key}/accounts`, body);
        if (answer.authorization_url) {
          if (!popup) { location.assign(answer.authorization_url); return; }
          popup.location = answer.authorization_url;
          const timer = setInterval(() => { if (popup.closed) { clearInterval(timer); location.reload(); } }, 1000);
        } else { location.reload(); }
      } catch (error) { popup?.close(); showError(form.querySelector(".form-error"), error.message); }
    });
    for (const button of row.querySelectorAll(".disconnect")) {
      button.addEventListener("click", async () => {
        try { if (await disconnectAccount(`/api/f/${facility}/accounts/${button.dataset.accountId}`, button)) location.reload(); }
        catch (error) { toast(error.message, "error"); }
      });
    }
  }
}

const tokenForm = document.getElementById("new-token");
tokenForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const created = await api("POST", "/api/tokens", { name: tokenForm.elements.name.value.trim() });
  const shown = document.getElementById("token-shown");
  shown.hidden = false;
  shown.textContent = `Copy it now, it is not shown again: ${created.token}`;
});
for (const button of document.querySelectorAll(".revoke-token")) {
  button.addEventListener("click", async () => { await api("DELETE", `/api/tokens/${button.dataset.tokenId}`); location.reload(); });
}
