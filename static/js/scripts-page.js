// The Scripts page: run a published script with an input and follow it live.
import { api, el, parseJson, showError, slug } from "./api.js";
import { buildForm } from "./input-form.js";
import { ready } from "./ws.js";
import { cancel, follow, linkRun, linkSettings, renderInto, runHistory, setStatus, start } from "./runs.js";

// Members read a failed run's error in words; scripters keep the code and line. Until the
// words come, a member sees neither the code nor the traceback (they showed while the
// server was asked); should the server not answer, the code and message come back.
const scripter = document.getElementById("script-cards")?.dataset.scripter === "yes";
async function explain(runId, node) {
  const coded = [...node.childNodes];
  node.replaceChildren(el("span", { class: "muted error-pending", text: "The script failed." }));
  try {
    const { words } = await api("GET", `/api/f/${slug}/runs/${runId}/explain`);
    if (words) { node.replaceChildren(el("span", { class: "error-words" }, ...linkSettings(words))); return; }
  } catch { /* said below */ }
  node.replaceChildren(...coded);
}

for (const card of document.querySelectorAll(".script-card")) {
  const button = card.querySelector(".run-script");
  const panel = card.querySelector(".run-panel");
  const parts = {
    status: card.querySelector(".run-status"), output: card.querySelector(".run-output"),
    result: card.querySelector(".run-result"), error: card.querySelector(".run-error"),
    elapsed: card.querySelector(".run-elapsed"), link: card.querySelector(".run-link"),
  };
  const inputError = card.querySelector(".input-error");
  const formBox = card.querySelector(".input-form");
  const form = formBox ? buildForm(formBox, JSON.parse(card.dataset.inputs || "[]")) : null;
  const stop = card.querySelector(".cancel-run");
  // "Your recent runs": read when opened, and again when this card's run ends while open.
  const details = card.querySelector(".history");
  const history = () => runHistory(details.dataset.scriptId, details.querySelector("tbody"),
    { empty: "No runs yet: press Run to try the script." }).catch(() => {});
  let current = null;
  stop.addEventListener("click", async () => {
    if (!current) return;
    stop.disabled = true;
    try { await cancel(current); } catch (error) { showError(inputError, error.message); stop.disabled = false; }
  });
  // Run and Enter in a field both submit the card's form: one run either way. A run going
  // on disables Run, and with it Enter's submit.
  card.querySelector(".run-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    let input;
    showError(inputError, "");
    if (form) {
      const read = form.read();
      if (Object.keys(read.errors).length) return;  // shown next to each field
      input = read.value;
    } else {
      try { input = parseJson(card.querySelector(".run-input").value, {}); }
      catch { showError(inputError, "The input is not valid JSON, e.g. {\"name\": \"Ada\"}."); return; }
    }
    // Run, disabled while its run goes on, would drop the keyboard's focus to the page's
    // top: Cancel, beside the run's status, holds it until the run ends and gives it back.
    const hadFocus = document.activeElement === button;
    button.disabled = true;
    panel.hidden = false;
    parts.output.textContent = ""; parts.output.hidden = true;
    parts.result.hidden = true; parts.error.hidden = true;
    linkRun(parts, null);  // the last run's link until this one has its own
    setStatus(parts.status, "queued");
    try {
      await ready;
      const run = await start({ script_id: Number(button.dataset.scriptId), input });
      current = run.id; stop.hidden = false; stop.disabled = false;
      // This run's own controls: its sign-in prompt may take the keyboard from them (prompts.js).
      button.dataset.runId = stop.dataset.runId = run.id;
      if (hadFocus && !document.activeElement?.closest("main, #prompts")) stop.focus();
      linkRun(parts, run.id);
      follow(run.id, (message) => {
        renderInto(parts, message);
        if (message.type === "run.finished") {
          const held = document.activeElement === stop || (hadFocus && document.activeElement === document.body);
          button.disabled = false; stop.hidden = true; current = null;
          if (held) button.focus();
          if (message.run.error && !scripter) explain(message.run.id, parts.error);
          // An open "Your recent runs" lists the run that just ended.
          if (details.open) history();
        }
      });
    } catch (error) {
      button.disabled = false;
      if (hadFocus && document.activeElement === document.body) button.focus();
      if (form && error.field?.startsWith("input.")) {
        form.showErrors({ [error.field.slice(6)]: error.message });
        panel.hidden = true;
      } else {
        setStatus(parts.status, "not_run");  // the server started no run
        parts.error.hidden = false; parts.error.textContent = error.message;
      }
    }
  });
  details.addEventListener("toggle", () => { if (details.open) history(); });
}
