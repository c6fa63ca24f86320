// The editor's input declaration: rows of name, type, required, default, help (and the
// choices of a choice). The server turns them into JSON Schema and checks them.
import { el } from "./api.js";

const TYPES = ["text", "number", "boolean", "choice", "date", "json"];

function row(field, onChange, onRemove) {
  const name = el("input", { class: "input-name mono", "aria-label": "Input name", placeholder: "name", value: field.name ?? "" });
  const type = el("select", { class: "input-type", "aria-label": "Type" },
    ...TYPES.map((t) => el("option", { value: t, text: t, selected: t === (field.type ?? "text") })));
  const required = el("input", { type: "checkbox", class: "input-required", checked: Boolean(field.required) });
  const defaultValue = field.default == null ? "" : typeof field.default === "string" ? field.default : JSON.stringify(field.default);
  const initial = el("input", { class: "input-default", "aria-label": "Default", placeholder: "default", value: defaultValue });
  const help = el("input", { class: "input-help", "aria-label": "Help", placeholder: "help for people filling it in", value: field.help ?? "" });
  const choices = el("input", { class: "input-choices", "aria-label": "Choices", placeholder: "choices, comma separated", value: (field.choices ?? []).join(", ") });
  const remove = el("button", { type: "button", class: "link input-remove", text: "Remove" });
  const node = el("div", { class: "input-row" }, name, type,
    el("label", { class: "check" }, required, "required"), initial, help, choices, remove);
  const sync = () => { choices.hidden = type.value !== "choice"; };
  sync();
  node.addEventListener("input", onChange);
  type.addEventListener("change", () => { sync(); onChange(); });
  remove.addEventListener("click", () => { node.remove(); onRemove(); });
  node.read = () => {
    const kind = type.value;
    let value = initial.value.trim();
    if (value === "") value = null;
    else if (kind === "boolean") value = value === "true";
    else if (kind === "json") { try { value = JSON.parse(value); } catch { /* the server says so */ } }
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
