// JSON API calls with the session's CSRF token, small DOM helpers and toasts.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
export const slug = document.body.dataset.facility ?? "";

// `errors`: every problem ({code, message, field}) when the server reports several fields at
// once; the first of them is also the error's own message and field.
export class ApiError extends Error {
  constructor(message, code, field, status, errors) {
    super(message);
    this.code = code;
    this.field = field;
    this.status = status;
    this.errors = errors;
  }
}

export async function api(method, path, body) {
  return (await send(method, path, body)).data;
}

// One page of a list and the cursor of the next (null on the last page): lists stay JSON
// arrays and say where the next page starts in the Next-Cursor header.
export async function apiPage(path) {
  const { data, response } = await send("GET", path);
  return { rows: data, next: response.headers.get("Next-Cursor") };
}

async function send(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  if (response.status !== 204) {
    try { data = await response.json(); } catch { data = null; }
  }
  if (!response.ok) {
    const error = data?.error ?? {};
    throw new ApiError(error.message ?? `The server answered ${response.status}.`, error.code, error.field, response.status, error.errors);
  }
  return { data, response };
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) node.append(child);
  return node;
}

// A row of `table` whose every cell is labelled with its column's heading: on a phone a
// row is a card of labelled lines (the stacked tables' CSS shows each cell's data-label).
export function labelledRow(table, attrs, ...cells) {
  const labels = [...table.tHead.rows[0].cells].map((th) => th.textContent);
  const tr = el("tr", attrs, ...cells);
  [...tr.cells].forEach((td, i) => td.setAttribute("data-label", labels[i] ?? ""));
  return tr;
}

// The one row of a table that lists nothing, across all its columns, in `words`.
export function nothingRow(table, words) {
  const columns = table.tHead.rows[0].cells.length;
  return el("tr", {}, el("td", { colspan: columns, class: "muted", "data-label": "", text: words }));
}

// A message in the page's corner for 4 s; `content` is words or a list of words and
// elements. A `lasting` one stays until removed (the returned element): an error that
// way is one the page cannot get past until the person acts, and is announced as such.
export function toast(content, kind = "info", { lasting = false } = {}) {
  const box = document.getElementById("toasts");
  if (!box) return null;
  const role = lasting && kind === "error" ? "alert" : "status";
  const item = el("div", { class: `toast ${kind}`, role }, ...[content].flat());
  box.append(item);
  // An error says what to do next: it stays long enough to be read (WCAG 2.2.1), longer
  // while the pointer rests on it, and a click puts it away.
  if (!lasting) {
    let timer = setTimeout(() => item.remove(), kind === "error" ? 12000 : 4000);
    if (kind === "error") {
      item.addEventListener("mouseenter", () => clearTimeout(timer));
      item.addEventListener("mouseleave", () => { timer = setTimeout(() => item.remove(), 4000); });
      item.addEventListener("click", () => item.remove());
    }
  }
  return item;
}

// A Copy button for a value shown on the page (a URL, a token, a secret shown once): its
// click copies `value`'s whole text, `name` ("URL", "signing secret") says what in the
// toast. Browsers give pages the clipboard only on https or localhost: elsewhere (a LAN
// install on plain http) there is none, or it refuses, and the text is selected instead.
export function copyOnClick(button, value, name) {
  button?.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(value.textContent);
      toast(`${name[0].toUpperCase()}${name.slice(1)} copied`, "ok");
    } catch {
      getSelection().selectAllChildren(value);
      toast(`The browser allows copying only on https: the ${name} is selected, press Ctrl+C (⌘C) to copy it`);
    }
  });
}

// A toast the page shows once it has loaded again (a change that reloads the page).
const LATER = "scriptbox.toast";
export function toastAfterReload(content, kind = "ok") {
  sessionStorage.setItem(LATER, JSON.stringify([content, kind]));
}
const later = sessionStorage.getItem(LATER);
if (later) {
  sessionStorage.removeItem(LATER);
  const [content, kind] = JSON.parse(later);
  toast(content, kind);
}

export function showError(node, message) {
  if (!node) return;
  node.textContent = message ?? "";
  node.hidden = !message;
}

export function parseJson(text, fallback) {
  const trimmed = (text ?? "").trim();
  if (!trimmed) return fallback;
  return JSON.parse(trimmed);
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

// Disconnect an account. When the provider refused the revocation or could not be reached
// the server keeps the account and says so: the choice (retry, or remove anyway) is shown
// after `anchor`. Resolves true once the account is gone, false if the person cancels.
export async function disconnectAccount(url, anchor) {
  try {
    await api("DELETE", url);
    return true;
  } catch (error) {
    if (error.code !== "revocation_failed") throw error;
    anchor.parentElement.querySelector(".revocation-failed")?.remove();
    return new Promise((resolve, reject) => {
      const retry = el("button", { type: "button", class: "revocation-retry", text: "Try again" });
      const anyway = el("button", { type: "button", class: "revocation-remove-anyway", text: "Remove anyway" });
      const cancel = el("button", { type: "button", class: "link", text: "Keep it" });
      const box = el("div", { class: "revocation-failed", role: "alert" },
        el("p", { class: "error", text: error.message }), el("div", { class: "row" }, retry, anyway, cancel));
      anchor.after(box);
      retry.addEventListener("click", () => { box.remove(); disconnectAccount(url, anchor).then(resolve, reject); });
      anyway.addEventListener("click", async () => {
        try {
          await api("DELETE", `${url}?remove_anyway=1`);
          box.remove();
          resolve(true);
        } catch (failure) { reject(failure); }
      });
      cancel.addEventListener("click", () => { box.remove(); resolve(false); });
    });
  }
}
