// Settings: connect and disconnect your own accounts per facility; API tokens.
import { api, copyOnClick, disconnectAccount, showError, toast, toastAfterReload } from "./api.js";
import { followSignIn } from "./sign-in-window.js";
import { on } from "./ws.js";

// Disconnecting reloads the page: the keyboard comes back to that integration's row (its
// form connects an account again), not to the page's top, and the page says what happened.
const BACK_TO = "scriptbox.settings-row";

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
      const errorBox = form.querySelector(".form-error");
      showError(errorBox, "");
      const oauth = row.dataset.authMode === "oauth2";
      const popup = oauth ? window.open("", `scriptbox-connect-${row.dataset.key}`, "width=540,height=720") : null;
      try {
        const answer = await api("POST", `/api/f/${facility}/integrations/${row.dataset.key}/accounts`, body);
        if (answer.authorization_url) {
          if (!popup) { location.assign(answer.authorization_url); return; }
          popup.location = answer.authorization_url;
          popup.focus();
          // A refused or failed sign-in is said beside this account's button, as on the
          // master account's page; a success reloads this page with the account connected.
          followSignIn(popup, errorBox);
        } else { popup?.close(); location.reload(); }
      } catch (error) { popup?.close(); showError(errorBox, error.message); }
    });
    for (const button of row.querySelectorAll(".disconnect")) {
      button.addEventListener("click", async () => {
        try {
          if (!await disconnectAccount(`/api/f/${facility}/accounts/${button.dataset.accountId}`, button)) return;
          toastAfterReload(`Your ${row.querySelector("h3").firstChild.textContent.trim()} account is disconnected.`);
          sessionStorage.setItem(BACK_TO, JSON.stringify([facility, row.dataset.key]));
          location.reload();
        }
        catch (error) { toast(error.message, "error"); }
      });
    }
  }
}

const backTo = JSON.parse(sessionStorage.getItem(BACK_TO) ?? "null");
if (backTo) {
  sessionStorage.removeItem(BACK_TO);
  const row = [...document.querySelectorAll(".facility-section")].find((s) => s.dataset.facility === backTo[0])
    ?.querySelector(`.integration-row[data-key="${CSS.escape(backTo[1])}"]`);
  row?.querySelector("button, input:not([type=hidden])")?.focus();
}

const tokenForm = document.getElementById("new-token");
const tokenError = document.getElementById("token-error");
tokenForm?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = tokenForm.elements.name.value.trim();
  if (!name) { showError(tokenError, "Name the token: what it is for."); return; }
  const button = tokenForm.querySelector("button[type=submit]");
  button.disabled = true;  // a double-click must not make a second token nobody sees
  showError(tokenError, "");
  try {
    const created = await api("POST", "/api/tokens", { name });
    const shown = document.getElementById("token-shown");
    shown.hidden = false;
    document.getElementById("token-value").textContent = created.token;
    listToken(created);
    tokenForm.reset();
    document.getElementById("copy-token").focus();  // Enter copies it
  } catch (error) { showError(tokenError, error.message); }
  finally { button.disabled = false; }
});

// A token holds '-' and '_': a double-click selected only a piece of it between two
// hyphens, and a program given that piece was refused. The button copies all of it.
copyOnClick(document.getElementById("copy-token"), document.getElementById("token-value"), "token");

// The columns' names label each cell where a phone shows the rows as cards.
const LABELS = ["Name", "Starts with", "Created", "Last used", ""];

// With no token the page says so instead of an empty table's headings.
function showTokenList() {
  const any = document.querySelector("#tokens tbody").rows.length > 0;
  document.getElementById("tokens").hidden = !any;
  document.getElementById("no-tokens").hidden = any;
}

function listToken(token) {
  const row = document.querySelector("#tokens tbody").insertRow(0);
  row.dataset.name = token.name;
  for (const text of [token.name, null, new Date().toISOString().slice(0, 10), "never"]) {
    const cell = row.insertCell();
    cell.dataset.label = LABELS[row.cells.length - 1];
    if (text === null) {
      const code = document.createElement("code");
      code.textContent = `${token.prefix}…`;
      cell.append(code);
    } else cell.textContent = text;
  }
  const revoke = document.createElement("button");
  Object.assign(revoke, { type: "button", className: "revoke-token link", textContent: "Revoke" });
  revoke.dataset.tokenId = token.id;
  const last = row.insertCell();
  last.dataset.label = "";
  last.append(revoke);
  watchRevoke(revoke);
  showTokenList();
}

// A revoked token cannot come back, and the programs using it stop at once: ask first.
function watchRevoke(button) {
  button.addEventListener("click", async () => {
    const { name } = button.closest("tr").dataset;
    if (!confirm(`Revoke the token “${name}”? Programs that use it are refused from now on.`)) return;
    button.disabled = true;
    try { await api("DELETE", `/api/tokens/${button.dataset.tokenId}`); button.closest("tr").remove(); showTokenList(); }
    catch (error) { button.disabled = false; toast(error.message, "error"); }
  });
}
for (const button of document.querySelectorAll(".revoke-token")) watchRevoke(button);

// A note of runs waiting for a sign-in goes once every prompt it stands for is answered
// (here, in the prompt box, or on another page): it would still say they wait.
on("grant.resolved", (message) => {
  for (const note of document.querySelectorAll(".waiting-note[data-grant-ids]")) {
    const waiting = new Set(note.dataset.grantIds.split(" "));
    if (!waiting.delete(String(message.grant_id))) continue;
    if (waiting.size) note.dataset.grantIds = [...waiting].join(" ");
    else note.remove();
  }
});

