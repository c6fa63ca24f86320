// The on-failure script of a schedule or a webhook trigger (schedules.js, triggers.js): a
// row's "When a run fails, run:" select that changes it in place, and why its last
// on-failure run could not start. The server checks the script (published, this facility's).
import { api, el, toast } from "./api.js";

// A select of the panel form's choices (`formSelect`: the facility's published scripts),
// and the one `holder` names if it is not among them (unpublished or deleted since). A
// change PATCHes `base`, then `done()` reloads the panel. `disabled` for a member the
// server would refuse (not its maker, not an admin): they see the choice, not change it.
export function handlerSelect(holder, { formSelect, base, className, label, done, disabled = false }) {
  const choices = [...document.querySelectorAll(`${formSelect} option`)].map((o) => [o.value, o.textContent]);
  const named = holder.on_failure_script_id == null ? "" : String(holder.on_failure_script_id);
  if (!choices.some(([value]) => value === named)) choices.push([named, `script ${named}`]);
  const select = el("select", { class: className, "aria-label": label },
    ...choices.map(([value, text]) => el("option", { value, text, selected: value === named })));
  select.disabled = disabled;
  select.addEventListener("change", async () => {
    try { await api("PATCH", base, { on_failure_script_id: select.value ? Number(select.value) : null }); } catch (error) { toast(error.message, "error"); }
    done();
  });
  return select;
}

// Why its last on-failure run could not start, in red (the server's words say what to
// do), or nothing.
export function handlerError(holder, className) {
  return holder.on_failure_error
    ? el("div", { class: `error ${className}`, text: `On failure: ${holder.on_failure_error.message}` }) : "";
}

// The form's choice as the API takes it: a script's id, or null for none.
export function chosenHandler(formSelect) {
  const value = document.querySelector(formSelect).value;
  return value ? Number(value) : null;
}
