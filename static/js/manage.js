// Management pages: new integrations (catalog or custom), settings, master account,
// connection test, members and usage.
import { api, copyOnClick, disconnectAccount, el, showError, slug, toast, toastAfterReload } from "./api.js";
import { followSignIn } from "./sign-in-window.js";

const words = (text) => (text ?? "").split(/[\s,]+/).filter(Boolean);
function jsonField(form, name, fallback) {
  const text = form.elements[name]?.value?.trim();
  if (!text) return fallback;
  try { return JSON.parse(text); }
  catch { throw Object.assign(new Error(`${name.replaceAll("_", " ")} is not valid JSON`), { field: name }); }
}

// A message shown under its own field needs no "field:" in front ("base_url: must be an
// https URL" is "Must be an https URL" there); a sentence that named the field by its
// subject ("name is required", "name: is required") says "This field" instead.
function besideField(message, field) {
  // The catalog validator names a part of a field by its path from the entry:
  // ".placements[0].location: …" reads as "placements[0].location: …".
  message = message.replace(/^\.(?=\w)/, "");
  const named = field.replace(/[^\w]/g, "\\$&").replaceAll("_", "[_ ]");  // "default headers" too
  const prefix = new RegExp(`^${named}:?\\s+`);
  const rest = message.replace(prefix, "");
  if (rest === message) return message;
  if (rest.startsWith("is ")) return `This field ${rest}`;
  return rest.charAt(0).toUpperCase() + rest.slice(1);
}

// Each problem goes under the field it names (a slot is added when the form has none there);
// only problems that name no field of this form go to the form's general error line. An error
// may carry several (`errors`): every wrong field is shown at once.
// A wrong field is marked aria-invalid and described by its problem, and the first one takes
// the focus: on a phone the form is taller than the screen, and the problems were out of
// sight above the button that was pressed, which looked as if it did nothing.
function fieldError(form, error) {
  for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  const problems = error.errors ?? (error.message ? [error] : []);
  const general = [];
  let first = null;
  for (const problem of problems) {
    let target = problem.field && form.querySelector(`.field-error[data-for="${problem.field}"]`);
    const input = problem.field && form.elements[problem.field];
    if (!target && input instanceof Element) {
      target = el("small", { class: "field-error", "data-for": problem.field });
      (input.closest("label") ?? input).after(target);
    }
    if (!target) general.push(problem.message);
    else if (!target.textContent) target.textContent = besideField(problem.message, problem.field);
    if (target && input instanceof HTMLElement) {
      target.id ||= `${form.id || "form"}-${problem.field}-error`;
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", target.id);
      first ??= input;
    }
  }
  showError(form.querySelector(".form-error"), general.join(" "));
  first?.focus();
}

// How each settings field is read, on the create and the Settings form alike; `blank` is
// what an empty field sends (the create form leaves it out, the Settings form clears it).
const listFields = new Set(["scopes", "allowed_hosts", "credential_fields"]);
const jsonFields = new Set(["placements", "parameters", "default_headers", "default_query", "authorization_params", "verify", "whoami"]);
function fieldValue(form, name, blank) {
  const input = form.elements[name];
  if (input.type === "checkbox") return input.checked;
  if (listFields.has(name)) return words(input.value);
  if (jsonFields.has(name)) return jsonField(form, name, blank);
  if (name === "client_secret") return input.value;
  return input.value.trim() || blank;
}
// Whether a field differs from what the page was served with (or last saved).
function edited(input) {
  if (input.type === "checkbox") return input.checked !== input.defaultChecked;
  if (input instanceof HTMLSelectElement) return [...input.options].some((o) => o.selected !== o.defaultSelected);
  return input.value !== input.defaultValue;
}
function markSaved(input) {
  if (input.type === "checkbox") input.defaultChecked = input.checked;
  else if (input instanceof HTMLSelectElement) for (const o of input.options) o.defaultSelected = o.selected;
  else input.defaultValue = input.value;
}

// The redirect URI to register at a provider: on the new-integration page (the provider
// gives the client id only once it is registered) and on an integration's settings.
for (const button of document.querySelectorAll(".copy-redirect")) {
  copyOnClick(button, button.parentElement.querySelector(".redirect-uri"), "redirect URI");
}

// -- new integration ---------------------------------------------------------------------
const custom = document.getElementById("custom-integration-form");
if (custom) {
  // Which fields each auth mode uses comes from the catalog module, via the page.
  const rules = JSON.parse(custom.dataset.rules);
  const mode = custom.elements.auth_mode;
  const uses = (name) => rules.fields[mode.value].includes(name);
  // The credential fields follow the auth mode until the admin edits them: switching from
  // API key to Basic used to keep "api_key", and Basic then asked for a placement.
  const credentials = custom.elements.credential_fields;
  let filled = "";
  const sync = () => {
    for (const node of custom.querySelectorAll("[data-field]")) node.hidden = !uses(node.dataset.field);
    // The example follows the mode: an API key's "Bearer {token}" sent no key and was refused.
    custom.elements.placements.placeholder = rules.placements[mode.value] ?? "";
    if (credentials.value.trim() && credentials.value !== filled) return;
    credentials.value = filled = (rules.credential_fields[mode.value] ?? []).join(" ");
  };
  mode.addEventListener("change", sync);
  sync();
  custom.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = custom.elements;
    // Blank and malformed values are the server's to report, all at once; only text that is
    // not JSON stops here (it cannot be sent), each such field named.
    const body = { key: f.key.value.trim() };
    const unreadable = [];
    for (const name of rules.fields[mode.value]) {
      if (!f[name]) continue;
      try { body[name] = fieldValue(custom, name, undefined); } catch (error) { unreadable.push(error); }
    }
    if (unreadable.length) { fieldError(custom, { errors: unreadable }); return; }
    try {
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
    } catch (error) { fieldError(form, error); }
  });
}

// -- one integration -------------------------------------------------------------------
const integrationPage = document.getElementById("integration-page");
if (integrationPage) {
  const key = integrationPage.dataset.key;
  const base = `/api/f/${slug}/integrations/${key}`;
  document.getElementById("test-connection")?.addEventListener("click", async () => {
    const out = document.getElementById("test-result");
    out.textContent = "Asking the provider…";
    try {
      const answer = await api("POST", `${base}/test`);
      out.textContent = answer.message;
      out.className = answer.ok ? "ok" : "error";
    } catch (error) { out.textContent = error.message; out.className = "error"; }
  });
  const testForm = document.getElementById("test-credentials");
  testForm?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const out = document.getElementById("test-result");
    const fields = {}; const parameters = {};
    for (const input of testForm.querySelectorAll("input")) {
      if (input.name.startsWith("param_")) parameters[input.name.slice(6)] = input.value; else fields[input.name] = input.value;
    }
    out.textContent = "Asking the provider…"; out.className = "muted";
    try {
      const answer = await api("POST", `${base}/test`, { fields, parameters });
      out.textContent = answer.message;
      out.className = answer.ok ? "ok" : "error";
    } catch (error) { out.textContent = error.message; out.className = "error"; }
  });
  document.getElementById("connect-master")?.addEventListener("click", async (event) => {
    const errorBox = event.target.parentElement.querySelector(".form-error");
    showError(errorBox, "");
    const popup = window.open("", "scriptbox-master-sign-in", "width=540,height=720");
    try {
      const answer = await api("POST", `${base}/master`, {});
      if (answer.authorization_url) {
        if (!popup) { location.assign(answer.authorization_url); return; }
        popup.location = answer.authorization_url;
        popup.focus();
        followSignIn(popup, errorBox);
      } else { popup?.close(); location.reload(); }
    } catch (error) { popup?.close(); showError(errorBox, error.message); }
  });
  document.getElementById("disconnect-master")?.addEventListener("click", async (event) => {
    if (!confirm("Disconnect the master account? Scripts will use members' own accounts.")) return;
    try { if (await disconnectAccount(`${base}/master`, event.target)) location.reload(); }
    catch (error) { toast(error.message, "error"); }
  });
  const masterForm = document.getElementById("master-credentials");
  masterForm?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = {}; const parameters = {};
    for (const input of masterForm.querySelectorAll("input")) {
      if (input.name.startsWith("param_")) parameters[input.name.slice(6)] = input.value; else fields[input.name] = input.value;
    }
    // Replacing an active master's credentials (the form folded under "Replace credentials")
    // says so after the reload, which shows the account's new identity; a refused key stays
    // on the form, and the account keeps the credentials it had.
    const replacing = masterForm.closest("details.replace-master");
    try {
      await api("POST", `${base}/master`, { fields, parameters });
      if (replacing) toastAfterReload("The master account's credentials were replaced.");
      location.reload();
    } catch (error) { fieldError(masterForm, error); }
  });
  // Only the fields changed are sent: the rest, the write-only secret and default values
  // included, stay as saved. Changes to what the rest of the page shows (the test form, the
  // who-am-I note, the saved default names) reload it.
  const settings = document.getElementById("integration-settings");
  const reshaping = new Set(["verify", "whoami", "credential_fields", "parameters", "default_headers", "default_query"]);
  settings?.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ok = settings.querySelector(".form-ok");
    const changed = [...settings.elements].filter((input) => input.name && edited(input));
    const body = {};
    const unreadable = [];
    for (const input of changed) {
      try { body[input.name] = fieldValue(settings, input.name, null); } catch (error) { unreadable.push(error); }
    }
    ok.hidden = true;
    if (unreadable.length) { fieldError(settings, { errors: unreadable }); return; }
    if (!changed.length) { fieldError(settings, {}); ok.textContent = "Nothing changed."; ok.hidden = false; return; }
    let saved;
    try {
      saved = await api("PATCH", base, body);
    } catch (error) { fieldError(settings, error); return; }
    fieldError(settings, {});
    // A save that sent secrets to a new origin signed accounts out: it says who and why.
    const said = saved?.reconnect_message ? `Saved. ${saved.reconnect_message}.` : null;
    if (changed.some((input) => reshaping.has(input.name))) {
      toastAfterReload(said ?? "Settings saved", said ? "warn" : "ok");
      location.reload();
      return;
    }
    for (const input of changed) if (input.name !== "client_secret") markSaved(input);
    const secret = settings.elements.client_secret;
    if (secret?.value) { secret.value = ""; secret.placeholder = "a secret is saved; leave blank to keep it"; }
    ok.textContent = said ?? "Saved.";  // in sight until the next save
    ok.hidden = false;
  });
}

// -- members and usage ---------------------------------------------------------------------
// A form's error speaks of what was sent: typing something else puts it away.
for (const form of document.querySelectorAll("form")) {
  const error = form.querySelector(".form-error");
  if (error) form.addEventListener("input", () => showError(error, ""));
}

const facilityName = document.getElementById("facility-name");
facilityName?.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const renamed = await api("PATCH", `/api/f/${slug}`, { name: facilityName.elements.name.value });
    toastAfterReload(`The facility is now called ${renamed.name}.`);
    location.reload();
  } catch (error) { showError(facilityName.querySelector(".form-error"), error.message); }
});

const addMember = document.getElementById("add-member");
addMember?.addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const invited = await api("POST", `/api/f/${slug}/members`, { email: addMember.elements.email.value.trim(), role: addMember.elements.role.value });
    toastAfterReload(invited.message);  // what happened, after the lists show it
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
      toast(`${name} is now ${select.value}`, "ok");  // whose role, and what it is now
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
// Withdrawing the last invitation takes its heading along: "Invited, not yet accepted"
// stayed above an empty table until a reload.
for (const row of document.querySelectorAll("#invitations tbody tr")) {
  row.querySelector(".withdraw-invitation").addEventListener("click", async () => {
    try { await api("DELETE", `/api/f/${slug}/invitations/${row.dataset.invitationId}`); }
    catch (error) { toast(error.message, "error"); return; }
    const body = row.parentElement;
    row.remove();
    if (!body.rows.length) document.getElementById("invited").hidden = true;
    toast(`The invitation to ${row.dataset.email} was withdrawn`, "ok");
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
