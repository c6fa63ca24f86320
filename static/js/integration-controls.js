// Switch an integration off or on, or delete it, after saying what depends on it.
import { api, el, slug, toast } from "./api.js";

const box = document.getElementById("integration-controls");
const { key, name } = box.dataset;
let found = null;

function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

function summary(data) {
  const parts = [];
  if (data.scripts.length) parts.push(`${plural(data.scripts.length, "script")} ${data.scripts.length === 1 ? "calls" : "call"} it (${data.scripts.map((s) => s.name).join(", ")})`);
  const accounts = data.master_accounts + data.user_accounts;
  if (accounts) parts.push(`${plural(accounts, "connected account")} (${data.master_accounts} master, ${data.user_accounts} personal)`);
  if (data.waiting_runs) parts.push(`${plural(data.waiting_runs, "run")} ${data.waiting_runs === 1 ? "waits" : "wait"} for a sign-in to it`);
  return parts;
}

// Loaded once; the buttons wait for it, so a question never leaves out what depends.
let loading = null;
function load() {
  loading ??= show();
  return loading;
}

async function show() {
  const target = document.getElementById("dependents");
  try {
    found = await api("GET", `/api/f/${slug}/integrations/${key}/dependents`);
    const parts = summary(found);
    if (!parts.length) { target.replaceChildren(el("p", { text: `Nothing uses ${name} yet: no script calls it and no account is connected.` })); return; }
    target.replaceChildren(el("p", { text: "Depends on it:" }), el("ul", {}, ...parts.map((p) => el("li", { text: p }))));
    const list = target.querySelector("ul");
    for (const script of found.scripts) {
      list.append(el("li", {}, el("a", { href: `/f/${slug}/editor/${script.id}`, text: `Open ${script.name}` })));
    }
  } catch (error) { target.textContent = error.message; }
}

document.getElementById("toggle-integration").addEventListener("click", async (event) => {
  const enabled = box.dataset.enabled === "yes";
  await load();
  if (enabled && found) {
    const parts = summary(found);
    const warning = parts.length ? `\n\nDepends on it: ${parts.join("; ")}. Their calls will fail with integration_unavailable.` : "";
    if (!confirm(`Switch ${name} off?${warning}`)) return;
  }
  event.target.disabled = true;
  try {
    await api("POST", `/api/f/${slug}/integrations/${key}/${enabled ? "disable" : "enable"}`);
    location.reload();
  } catch (error) { toast(error.message, "error"); event.target.disabled = false; }
});

document.getElementById("delete-integration").addEventListener("click", async (event) => {
  await load();
  const parts = found ? summary(found) : [];
  const warning = parts.length ? `\n\nDepends on it: ${parts.join("; ")}. The accounts are removed and those scripts will fail with unknown_integration.` : "";
  if (!confirm(`Delete ${name}?${warning}`)) return;
  event.target.disabled = true;
  try {
    await api("DELETE", `/api/f/${slug}/integrations/${key}`);
    location.assign(`/f/${slug}/manage`);
  } catch (error) { toast(error.message, "error"); event.target.disabled = false; }
});

// Rendered disabled: a click before the listeners above were added did nothing.
for (const id of ["toggle-integration", "delete-integration"]) document.getElementById(id).disabled = false;
load();
