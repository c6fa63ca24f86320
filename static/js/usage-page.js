// Usage page: the monthly call quota (admins set it) and calls per integration per month as
// a chart with the quota line, plus the same numbers as a table.
import { api, showError, slug } from "./api.js";
import { usageChart } from "../vendor/chart.js";

const months = Number(document.getElementById("usage-script").dataset.months);
const dark = window.matchMedia("(prefers-color-scheme: dark)");
const form = document.getElementById("quota-form");
const summary = document.getElementById("usage-summary");
const box = document.getElementById("usage-chart-box");
const table = document.getElementById("usage-table");
let chart = null;
let names = {};

function cell(tag, text) { const node = document.createElement(tag); node.textContent = text; return node; }

function renderTable(data, keys) {
  const head = table.tHead.rows[0];
  head.replaceChildren(cell("th", "Month"), ...keys.map((k) => cell("th", names[k] || k)), cell("th", "Total"));
  table.tBodies[0].replaceChildren(...data.months.map((m) => {
    const row = document.createElement("tr");
    row.append(cell("td", m.month), ...keys.map((k) => cell("td", String(m.calls[k] || 0))), cell("td", String(m.total)));
    return row;
  }));
  table.hidden = false;
}

async function render() {
  const data = await api("GET", `/api/f/${slug}/usage?months=${months}`);
  const keys = [...new Set(data.months.flatMap((m) => Object.keys(m.calls)))].sort();
  const quota = data.quota ? ` of the ${data.quota.toLocaleString()}-call quota` : " (no quota)";
  summary.textContent = `${data.month}: ${data.total.toLocaleString()} calls${quota}.`;
  chart?.destroy();
  chart = null;
  const empty = keys.length === 0;
  document.getElementById("usage-empty").hidden = !empty;
  box.hidden = empty;
  if (empty) { table.hidden = true; return; }
  const canvas = document.getElementById("usage-chart");
  chart = usageChart(canvas, { months: data.months, quota: data.quota, names, dark: dark.matches });
  // What the chart draws, in words for screen readers (the table below has the numbers).
  canvas.setAttribute("aria-label", `Calls per month for ${keys.map((k) => names[k] || k).join(", ")}` +
    (data.quota ? `, with the quota line at ${data.quota} calls` : ", no quota line"));
  renderTable(data, keys);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const ok = form.querySelector(".form-ok");
  ok.hidden = true;
  form.querySelector(".form-error").hidden = true;
  const text = form.elements.quota.value.trim();
  try {
    const saved = await api("PUT", `/api/f/${slug}/usage/quota`, { quota: text === "" ? null : Number(text) });
    ok.textContent = saved.quota ? `Saved: ${saved.quota.toLocaleString()} calls per month.` : "Saved: no quota.";
    ok.hidden = false;
    await render();
  } catch (error) { showError(form.querySelector(".form-error"), error.message); }
});

dark.addEventListener("change", () => render());
api("GET", `/api/f/${slug}/integrations`)
  .then((list) => { names = Object.fromEntries(list.map((i) => [i.key, i.name])); })
  .catch(() => {})
  .finally(() => render().catch((error) => { summary.textContent = error.message; }));
