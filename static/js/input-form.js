// Forms generated from a script's declared inputs (the server's field list, in the order
// declared; stored as JSON Schema): one field per input, checked here before the run and
// again by the server.
import { el } from "./api.js";

function control(name, field, kind) {
  const id = `input-${name}-${Math.random().toString(36).slice(2, 8)}`;
  const initial = field.default ?? undefined;
  let node;
  if (kind === "choice") {
    node = el("select", { id, name }, el("option", { value: "", text: "— choose —" }),
      ...field.choices.map((choice) => el("option", { value: choice, text: choice, selected: choice === initial })));
  } else if (kind === "boolean") {
    node = el("input", { id, name, type: "checkbox", checked: initial === true });
  } else if (kind === "json") {
    node = el("textarea", { id, name, class: "mono", rows: 2, spellcheck: "false" });
    if (initial !== undefined) node.value = JSON.stringify(initial);
  } else {
    node = el("input", { id, name, type: kind === "number" ? "number" : kind === "date" ? "date" : "text", step: kind === "number" ? "any" : undefined });
    if (initial !== undefined && initial !== null) node.value = String(initial);
  }
  return node;
}

// Render the form for the declared `declared` fields into `container`; returns
// read() -> {value, errors} and showErrors({name: message}).
export function buildForm(container, declared) {
  const required = new Set(declared.filter((f) => f.required).map((f) => f.name));
  const fields = new Map();
  container.replaceChildren();
  for (const field of declared) {
    const { name, type: kind } = field;
    const input = control(name, field, kind);
    const error = el("span", { class: "field-error", id: `${input.id}-error`, hidden: true });
    // The error is the field's description: a screen reader on the field reads it.
    input.setAttribute("aria-describedby", error.id);
    const title = el("span", {}, name, required.has(name) ? el("span", { class: "required", title: "required", text: " *" }) : "");
    const label = kind === "boolean"
      ? el("label", { class: "check input-field", "data-input": name }, input, title)
      : el("label", { class: "input-field", "data-input": name }, title, input);
    if (field.help) label.append(el("small", { class: "muted", text: field.help }));
    label.append(error);
    container.append(label);
    fields.set(name, { kind, input, error });
  }

  function showErrors(errors) {
    for (const [name, field] of fields) {
      field.error.textContent = errors[name] ?? "";
      field.error.hidden = !errors[name];
      // "true", not toggleAttribute's "": ARIA reads an empty aria-invalid as false.
      if (errors[name]) field.input.setAttribute("aria-invalid", "true");
      else field.input.removeAttribute("aria-invalid");
    }
  }

  function read() {
    const value = {};
    const errors = {};
    for (const [name, { kind, input }] of fields) {
      if (kind === "boolean") { value[name] = input.checked; continue; }
      const raw = input.value.trim();
      // A number or date the browser cannot read ("1-2", "1e999", a date typed in part)
      // reads as "": say so, rather than run without it (or with its default).
      if (raw === "" && input.validity.badInput) {
        errors[name] = kind === "date" ? `${name} is not a whole date` : `${name} must be a number`;
        continue;
      }
      if (raw === "") {
        if (required.has(name)) errors[name] = `${name} is required`;
        continue;
      }
      if (kind === "number") {
        const number = Number(raw);
        if (Number.isNaN(number)) errors[name] = `${name} must be a number`; else value[name] = number;
      } else if (kind === "json") {
        try { value[name] = JSON.parse(raw); } catch { errors[name] = `${name} is not valid JSON`; }
      } else value[name] = raw;
    }
    showErrors(errors);
    return { value, errors };
  }

  return { read, showErrors, empty: fields.size === 0 };
}
