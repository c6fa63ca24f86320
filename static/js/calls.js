// The call log page: filters reload the table.
import { api, el, slug, when } from "./api.js";

const form = document.getElementById("call-filters");
const tbody = document.querySelector("#calls tbody");
const names = Object.fromEntries([...form.elements.user.options].map((o) => [o.value, o.text]));
const scripts = Object.fromEntries([...form.elements.script.options].map((o) => [o.value, o.text]));

// The call's own time and the time a person took to sign in are shown apart.
const ms = (value) => (value == null ? "" : String(Math.round(value)));

async function load() {
  const query = new URLSearchParams([...new FormData(form)].filter(([, v]) => v));
  const rows = await api("GET", `/api/f/${slug}/calls?${query}`);
  tbody.replaceChildren(...rows.map((c) => el("tr", { class: c.error || c.status >= 400 ? "bad" : "" },
    el("td", { text: when(c.created_at) }), el("td", { text: names[c.user_id] ?? "" }),
    el("td", { text: scripts[c.script_id] ?? (c.script_id ? `#${c.script_id}` : "editor") }),
    el("td", { text: c.integration }), el("td", { text: c.account ?? "" }), el("td", { text: c.method }),
    el("td", { class: "mono", text: c.path }), el("td", { text: c.status ?? "" }),
    el("td", { class: "call-ms", text: ms(c.duration_ms) }), el("td", { class: "wait-ms", text: ms(c.wait_ms) }),
    el("td", { text: c.error ?? "" }))));
  if (!rows.length) tbody.replaceChildren(el("tr", {}, el("td", { colspan: 11, class: "muted", text: "No calls match." })));
}
form.addEventListener("change", load);
load();
