// The call log page: filters reload the table; older calls come a page at a time.
import { apiPage, el, labelledRow, nothingRow, slug, when } from "./api.js";
import { accountWords, callErrorWords } from "./wording.js";

const form = document.getElementById("call-filters");
const table = document.getElementById("calls");
const tbody = table.tBodies[0];
const older = document.getElementById("older-calls");
const status = document.getElementById("calls-status");
const names = Object.fromEntries([...form.elements.user.options].map((o) => [o.value, o.text]));
const scripts = Object.fromEntries([...form.elements.script.options].map((o) => [o.value, o.text]));

// The call's own time and the time a person took to sign in are shown apart.
const ms = (value) => (value == null ? "" : String(Math.round(value)));

// On a phone a call is a card of labelled lines (labelledRow).
const row = (c) => labelledRow(table, { class: c.error || c.status >= 400 ? "bad" : "" },
    el("td", { text: when(c.created_at) }), el("td", { text: names[c.user_id] ?? "" }),
    el("td", { text: scripts[c.script_id] ?? (c.script_id ? `#${c.script_id}` : "editor") }),
    el("td", { text: c.integration }), el("td", { text: accountWords(c.account), title: c.account }), el("td", { text: c.method }),
    el("td", { class: "mono", text: c.path }), el("td", { text: c.status ?? "" }),
    el("td", { class: "call-ms", text: ms(c.duration_ms) }), el("td", { class: "wait-ms", text: ms(c.wait_ms) }),
    // In words, with the code (what the API and the export say) in the title.
    el("td", { text: c.error ? callErrorWords(c.error) : "", title: c.error }));

// The API sends 50 calls at a time: the rest used to be out of reach. `next` is where the
// following page starts; a filter change starts over (and outdates a page still loading).
let next = null;
let latest = 0;
async function load(more = false) {
  const asked = ++latest;
  const query = new URLSearchParams([...new FormData(form)].filter(([, v]) => v));
  if (more) query.set("cursor", next);
  older.disabled = true;
  status.textContent = "Loading…";
  try {
    const page = await apiPage(`/api/f/${slug}/calls?${query}`);
    if (asked !== latest) return;
    const rows = page.rows.map(row);
    if (more) tbody.append(...rows); else tbody.replaceChildren(...rows);
    if (!tbody.rows.length) tbody.replaceChildren(noMatch());
    next = page.next;
    status.textContent = "";
  } catch (error) {
    if (asked === latest) status.textContent = `${error.message} Reload the page to try again.`;
  }
  if (asked !== latest) return;
  older.hidden = !next;
  older.disabled = false;
}
// The filters live in the page's address too: a reload keeps them, and a link shares them.
// The page chose them in the form (call_log in pages.py); a value it could not read is
// said by the form (#call-filter-problems) and lists no call until a filter changes: the
// log was shown whole, as if the address had asked for every call.
const FILTERS = ["integration", "user", "script", "status"];
const problems = document.getElementById("call-filter-problems");
const noMatch = () => nothingRow(table, "No calls match.");
form.addEventListener("change", () => {
  problems?.remove();
  const shown = new URLSearchParams(FILTERS.filter((n) => form.elements[n].value).map((n) => [n, form.elements[n].value]));
  history.replaceState(null, "", shown.size ? `?${shown}` : location.pathname);
  next = null;
  load();
});
older.addEventListener("click", () => load(true));
if (problems) tbody.replaceChildren(noMatch()); else load();
