// The editor's Store panel: the values a saved script's runs kept with store.set (its
// store, shared by every run of the script), each with its size and last write; Delete
// forgets one key, Clear all of them (both ask first). The server checks everything.
import { api, el, showError, slug, toast } from "./api.js";
import { shortTime } from "./elapsed.js";

// A value as JSON, cut for the table (the whole value is in the title).
function shown(value) {
  const text = JSON.stringify(value);
  return text.length > 200 ? `${text.slice(0, 199)}…` : text;
}

function row(entry, base, reload) {
  const remove = el("button", { type: "button", class: "danger store-delete", "aria-label": `Delete ${entry.key}`, text: "Delete" });
  remove.addEventListener("click", async () => {
    if (!confirm(`Delete "${entry.key}" from the store? The script's next run will not find it.`)) return;
    try { await api("DELETE", `${base}/${encodeURIComponent(entry.key)}`); toast("Key deleted", "ok"); } catch (error) { toast(error.message, "error"); }
    reload();
  });
  const cell = (label, className, ...children) => el("td", { "data-label": label, class: className }, ...children);
  return el("tr", { "data-key": entry.key },
    cell("Key", "store-key mono", entry.key),
    cell("Value", "store-value mono", el("span", { title: JSON.stringify(entry.value), text: shown(entry.value) })),
    cell("Size", "store-size", `${entry.size} B`),
    cell("Set", "store-updated", entry.updated_at ? shortTime(entry.updated_at) : ""),
    el("td", { "data-label": "" }, remove));
}

// Fill the panel for `scriptId`; returns a function that reloads it (after a run, too:
// a run may have changed the store).
export function storePanel(panel, scriptId) {
  const table = panel.querySelector("#store-table");
  const error = panel.querySelector("#store-error");
  const empty = panel.querySelector("#store-empty");
  const clear = panel.querySelector("#store-clear");
  const base = () => `/api/f/${slug}/scripts/${scriptId()}/store`;

  async function load() {
    if (!scriptId()) return;
    panel.hidden = false;
    try {
      const store = await api("GET", base());
      const entries = store.entries;
      table.hidden = !entries.length;
      clear.hidden = !entries.length;
      empty.hidden = Boolean(entries.length);
      table.tBodies[0].replaceChildren(...entries.map((entry) => row(entry, base(), load)));
      panel.querySelector("#store-count").textContent = entries.length ? ` (${entries.length})` : "";
      showError(error, "");
    } catch (failure) { showError(error, failure.message); }
  }

  clear.addEventListener("click", async () => {
    if (!confirm("Delete every key of this script's store? Its next run starts with an empty store.")) return;
    try { await api("DELETE", base()); toast("Store cleared", "ok"); } catch (failure) { toast(failure.message, "error"); }
    await load();
    panel.querySelector("summary").focus();
  });
  return load;
}
