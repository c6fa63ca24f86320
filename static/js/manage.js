// Management pages: new integrations (catalog or custom), settings, master account,
// connection test, members and usage.
import { api, el, showError, slug, toast } from "./api.js";

const words = (text) => (text ?? "").split(/[\s,]+/).filter(Boolean);
function jsonField(form, name, fallback) {
  const text = form.elements[name]?.value?.trim();
  if (!text) return fallback;
  try { return JSON.parse(text); }
  catch { throw Object.assign(new Error(`${name.replaceAll("_", " ")} is not valid JSON`), { field: name }); }
}

function fieldError(form, error) {
  for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
  const target = error.field && form.querySelector(`.field-error[data-for="${error.field}"]`);
  if (target) target.textContent = error.message;
  showError(form.querySelector(".form-error"), target ? "" : error.message);
}

// -- new integration ---------------------------------------------------------------------
const custom = document.getElementById("custom-integration-form");
if (custom) {
  const mode = custom.elements.auth_mode;
  const sync = () => {
    const oauth = mode.value.startsWith("oauth2");
    custom.querySelector(".oauth-only").hidden = !oauth;
    for (const node of custom.querySelectorAll(".code-only")) node.hidden = mode.value !== "oauth2";
    custom.querySelector(".key-only").hidden = oauth || mode.value === "none";
    if (!oauth && mode.value !== "none" && !custom.elements.credential_fields.value) {
      custom.elements.credential_fields.value = { api_key: "api_key", api_key_secret: "api_key api_secret", basic: "username password" }[mode.value];
    }
  };
  mode.addEventListener("change", sync);
  sync();
  custom.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = custom.elements;
    try {
      for (const name of ["key", "name", "base_url"]) {
        if (!f[name].value.trim()) throw Object.assign(new Error("required"), { field: name });
      }
      const oauth = f.auth_mode.value.startsWith("oauth2");
      const body = {
        key: f.key.value.trim(), name: f.name.value.trim(), auth_mode: f.auth_mode.value,
        base_url: f.base_url.value.trim(), allowed_hosts: words(f.allowed_hosts.value),
        allow_private_network: f.allow_private_network.checked,
        placements: jsonField(custom, "placements", undefined),
        parameters: jsonField(custom, "parameters", undefined),
        default_headers: jsonField(custom, "default_headers", undefined),
        default_query: jsonField(custom, "default_query", undefined),
      };
      if (oauth) {
        Object.assign(body, {
          token_url: f.token_url.value.trim(), token_request_method: f.token_request_method.value,
          token_auth_method: f.token_auth_method.value, revoke_url: f.revoke_url.value.trim() || undefined,
          scopes: words(f.scopes.value), scope_separator: f.scope_separator.value,
          client_id: f.client_id.value.trim(), client_secret: f.client_secret.value, refresh_on_403: f.refresh_on_403.checked,
        });
        if (f.auth_mode.value === "oauth2") {
          Object.assign(body, { authorization_url: f.authorization_url.value.trim(), pkce: f.pkce.checked,
            authorization_params: jsonField(custom, "authorization_params", undefined) });
        }
      } else if (f.auth_mode.value !== "none") {
        body.credential_fields = words(f.credential_fields.value);
      }
      const created = await api("POST", `/api/f/${slug}/integrations`, body);
      location.assign(`/f/${slug}/manage/integrations/${created.key}`);
    } catch (error) { fieldError(custom, error); }
  });
}

const search = document.getElementById("catalog-search");
if (search) {
  search.addEventListener("input", () => {
    const q = search.value.trim().toLowerCase();
    for (const item of document.querySelectorAll(".catalog-entry")) item.hidden = q && !item.dataset.name.includes(q) && !item.dataset.key.includes(q);
  });
}
for (const form of document.querySelectorAll(".catalog-form")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = form.elements;
    try {
      const created = await api("POST", `/api/f/${slug}/integrations`, {
        catalog_key: form.dataset.catalogKey, key: f.key.value.trim(),
        client_id: f.client_id?.value.trim(), client_secret: f.client_secret?.value,
      });
      location.assign(`/f/${slug}/manage/integrations/${created.key}`);
    } catch (error) { showError(form.querySelector(".form-error"), error.message); }
  });
}

// -- one integration -------------------------------------------------------------------
const integrationPage = document.getElementById("integration-page");
if (integrationPage) {
  const key = integrationPage.dataset.key;
  const base = `/api/f/${slug}/integrations/${key}`;
  document.getElementById("copy-redirect")?.addEventListener("click", async () => {
    await navigator.clipboard.writeText(document.getElementById("redirect-uri").textContent);
    toast("Redirect URI copied", "ok");
  });
  document.getElementById("test-connection")?.addEventListener("click", async () => {
    const out = document.getElementById("test-result");
    out.textContent = "Asking the provider…";
    try {
      const answer = await api("POST", `${base}/test`);
      out.textContent = answer.message;
      out.className = answer.ok ? "ok" : "error";
    } catch (error) { out.textContent = error.message; out.className = "error"; }
  });
  document.getElementById("connect-master")?.addEventListener("click", async (event) => {
    const errorBox = event.target.parentElement.querySelector(".form-error");
    const popup = window.open("", "scriptbox-master-sign-in", "width=540,height=720");
    try {
      const answer = await api("POST", `${base}/master`, {});
      if (answer.authorization_url) {
        if (popup) popup.location = answer.authorization_url; else location.assign(answer.authorization_url);
        const timer = setInterval(() => { if (!popup || popup.closed) { clearInterval(timer); location.reload(); } }, 1000);
      } else { popup?.close(); location.reload(); }
    } catch (error) { popup?.close(); showError(errorBox, error.message); }
  });
  document.getElementById("disconnect-master")?.addEventListener("click", async () => {
    if (!confirm("Disconnect the master account? Scripts will use members' own accounts.")) return;
    try { await api("DELETE", `${base}/master`); location.reload(); } catch (error) { toast(error.message, "error"); }
  });
  const masterForm = document.getElementById("master-credentials");
  masterForm?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = {}; const parameters = {};
    for (const input of masterForm.querySelectorAll("input")) {
      if (input.name.startsWith("param_")) parameters[input.name.slice(6)] = input.value; else fields[input.name] = input.value;
    }
    try { await api("POST", `${base}/master`, { fields, parameters }); location.reload(); }
    catch (error) { showError(masterForm.querySelector(".form-error"), error.message); }
  });
  const settings = document.getElementById("integration-settings");
  settings?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = settings.elements;
    const body = { name: f.name.value.trim(), base_url: f.base_url.value.trim(), allowed_hosts: words(f.allowed_hosts.value), allow_private_network: f.allow_private_network.checked };
    for (const name of ["authorization_url", "token_url", "revoke_url", "client_id"]) if (f[name]) body[name] = f[name].value.trim() || null;
    if (f.scopes) body.scopes = words(f.scopes.value);
    if (f.client_secret?.value) body.client_secret = f.client_secret.value;
    try {
      await api("PATCH", base, body);
      settings.querySelector(".form-ok").hidden = false; showError(settings.querySelector(".form-error"), "");
      if (f.client_secret) f.client_secret.value = "";
    } catch (error) { showError(settings.querySelector(".form-error"), error.message); }
  });
}

// -- members and usage ---------------------------------------------------------------------
const addMember = document.getElementById("add-member");
addMember?.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await api("POST", `/api/f/${slug}/members`, { email: addMember.elements.email.value.trim(), role: addMember.elements.role.value });
    location.reload();
  } catch (error) { showError(addMember.querySelector(".form-error"), error.message); }
});
const members = document.getElementById("members");
const self = members?.dataset.self;
for (const row of members?.querySelectorAll("tbody tr") ?? []) {
  const { userId, name } = row.dataset;
  const select = row.querySelector(".member-role");
  // Role changes ask first: one stray click used to lock the only admin out of Management.
  select.addEventListener("change", async () => {
    const leaving = userId === self && select.dataset.role === "admin";
    const question = leaving
      ? `Make yourself ${select.value}? You will no longer be able to open Management.`
      : `Make ${name} ${select.value}?`;
    if (!confirm(question)) { select.value = select.dataset.role; return; }
    try {
      await api("PATCH", `/api/f/${slug}/members/${userId}`, { role: select.value });
      select.dataset.role = select.value;
      if (leaving) { location.assign(`/f/${slug}/scripts`); return; }
      toast("Role changed", "ok");
    } catch (error) { select.value = select.dataset.role; toast(error.message, "error"); }
  });
  row.querySelector(".remove-member").addEventListener("click", async () => {
    const question = userId === self
      ? "Remove yourself from this facility? You will lose access to it."
      : `Remove ${name} from this facility?`;
    if (!confirm(question)) return;
    try {
      await api("DELETE", `/api/f/${slug}/members/${userId}`);
      if (userId === self) { location.assign("/"); return; }
      row.remove();
      toast(`${name} was removed`, "ok");
    } catch (error) { toast(error.message, "error"); }
  });
}
for (const row of document.querySelectorAll("#invitations tbody tr")) {
  row.querySelector(".withdraw-invitation").addEventListener("click", async () => {
    try { await api("DELETE", `/api/f/${slug}/invitations/${row.dataset.invitationId}`); row.remove(); }
    catch (error) { toast(error.message, "error"); }
  });
}
const usage = document.getElementById("usage");
if (usage) {
  api("GET", `/api/f/${slug}/usage`).then((data) => {
    const parts = Object.entries(data.calls).map(([key, count]) => `${key} ${count}`);
    usage.textContent = `Usage in ${data.month}: ${data.total} calls${parts.length ? ` (${parts.join(", ")})` : ""}${data.quota ? ` of a ${data.quota}-call quota` : ""}`;
  }).catch(() => { usage.textContent = ""; });
}
export { el };
