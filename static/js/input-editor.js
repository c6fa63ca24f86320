// The editor's input declaration: rows of name, type, required, default, help (and the
// choices of a choice). The server turns them into JSON Schema and checks them.
import { ApiError, el } from "./api.js";

const TYPES = ["text", "number", "boolean", "choice", "date", "json"];

function row(field, onChange, onRemove) {
  const name = el("input", { class: "input-name mono", "aria-label": "Input name", placeholder: "name", value: field.name ?? "" });
  const type = el("select", { class: "input-type", "aria-label": "Type" },
    ...TYPES.map((t) => el("option", { value: t, text: t, selected: t === (field.type ?? "text") })));
  const required = el("input", { type: "checkbox", class: "input-required", checked: Boolean(field.required) });
  const defaultValue = field.default == null ? "" : typeof field.default === "string" ? field.default : JSON.stringify(field.default);
  const initial = el("input", { class: "input-default", "aria-label": "Default", placeholder: "default", value: defaultValue });
  // A boolean's default is chosen, not typed: a text box turned "yes" into false.
  const flag = el("select", { class: "input-default-flag", "aria-label": "Default" },
    ...[["", "no default"], ["true", "true"], ["false", "false"]].map(([value, text]) =>
      el("option", { value, text, selected: value === (typeof field.default === "boolean" ? String(field.default) : "") })));
  const problem = el("small", { class: "field-error input-default-error", hidden: true });
  const help = el("input", { class: "input-help", "aria-label": "Help", placeholder: "help for people filling it in", value: field.help ?? "" });
  const choices = el("input", { class: "input-choices", "aria-label": "Choices", placeholder: "choices, comma separated", value: (field.choices ?? []).join(", ") });
  const remove = el("button", { type: "button", class: "link input-remove", text: "Remove" });
  const node = el("div", { class: "input-row" }, name, type,
    el("label", { class: "check" }, required, "required"), initial, flag, problem, help, choices, remove);
  // The typed default as the value to send, or the words saying why it cannot be one.
  const parsed = () => {
    const text = initial.value.trim();
    if (type.value === "boolean") return { value: flag.value === "" ? null : flag.value === "true" };
    if (text === "") return { value: null };
    if (type.value !== "json") return { value: text };
    try { return { value: JSON.parse(text) }; }
    catch { return { error: "The default is not valid JSON (text goes in double quotes)." }; }
  };
  const check = () => {
    const { error } = parsed();
    problem.textContent = error ?? "";
    problem.hidden = !error;
    if (error) initial.setAttribute("aria-invalid", "true"); else initial.removeAttribute("aria-invalid");
  };
  const sync = () => {
    choices.hidden = type.value !== "choice";
    initial.hidden = type.value === "boolean";
    flag.hidden = type.value !== "boolean";
    check();
  };
  sync();
  node.addEventListener("input", onChange);
  initial.addEventListener("input", check);
  flag.addEventListener("change", onChange);
  type.addEventListener("change", () => { sync(); onChange(); });
  remove.addEventListener("click", () => { node.remove(); onRemove(); });
  node.read = () => {
    const kind = type.value;
    const { value, error } = parsed();
    const label = name.value.trim() || "without a name";
    // Refused here, never sent: the save ends as a server refusal does ("Not saved: ...").
    if (error) throw new ApiError(`input ${label}: ${error}`, "invalid", "inputs");
    return {
      name: name.value.trim(), type: kind, required: required.checked, default: value,
      help: help.value.trim(),
      choices: kind === "choice" ? choices.value.split(",").map((c) => c.trim()).filter(Boolean) : [],
    };
  };
  return node;
}

export function createInputEditor(container, addButton, fields, onChange) {
  const changed = () => onChange();
  const add = (field) => container.append(row(field, changed, changed));
  for (const field of fields) add(field);
  addButton.addEventListener("click", () => { add({}); changed(); container.lastElementChild.querySelector(".input-name").focus(); });
  return { read: () => [...container.children].map((node) => node.read()) };
}
