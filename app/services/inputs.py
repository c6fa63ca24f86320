"""A script's declared inputs: the editor's field list <-> JSON Schema, and checking a run's input.

The declaration is stored as JSON Schema in `Script.input_schema` (checked with `jsonschema`),
so the API and the generated forms follow one rule. An empty schema declares nothing and
accepts any JSON input, as scripts did before inputs could be declared.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError as SchemaError

from app.errors import ValidationError

FIELD_TYPES = ("text", "number", "boolean", "choice", "date", "json")
MAX_FIELDS = 30
MAX_CHOICES = 50
# An input's help shows under its field in the run forms; the API and every caller of
# schema_from_fields share this bound (a longer help is refused, never cut).
MAX_HELP_LENGTH = 300
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
_FORMATS = FormatChecker(["date"])


def schema_from_fields(fields: Any) -> dict[str, Any]:
    """The JSON Schema for the editor's field list, refusing a declaration that does not fit."""
    if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
        raise ValidationError(f"inputs must be a list of up to {MAX_FIELDS} fields", field="inputs")
    if not fields:
        return {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for raw in fields:
        if not isinstance(raw, dict):
            raise ValidationError("each input is an object with a name and type", field="inputs")
        name = str(raw.get("name", "")).strip()
        if not _NAME.match(name):
            raise ValidationError(
                f"input name {name!r} must be letters, digits and _ (not starting with a digit)",
                field="inputs",
            )
        if name in properties:
            raise ValidationError(f"two inputs are called {name}", field="inputs")
        properties[name] = _property(name, raw)
        if raw.get("required"):
            required.append(name)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


def _property(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    kind = raw.get("type")
    if kind not in FIELD_TYPES:
        raise ValidationError(
            f"input {name}: the type must be one of {', '.join(FIELD_TYPES)}", field="inputs"
        )
    prop: dict[str, Any] = {"title": name}
    if kind == "text":
        prop["type"] = "string"
    elif kind == "number":
        prop["type"] = "number"
    elif kind == "boolean":
        prop["type"] = "boolean"
    elif kind == "date":
        prop.update(type="string", format="date")
    elif kind == "choice":
        choices = raw.get("choices")
        if (
            not isinstance(choices, list)
            or not 0 < len(choices) <= MAX_CHOICES
            or not all(isinstance(c, str) and c.strip() for c in choices)
        ):
            raise ValidationError(
                f"input {name}: list 1 to {MAX_CHOICES} choices", field="inputs"
            )
        prop.update(type="string", enum=[c.strip()[:120] for c in choices])
    # "json" adds no type: any JSON value is accepted.
    help_text = str(raw.get("help") or "").strip()
    if len(help_text) > MAX_HELP_LENGTH:
        raise ValidationError(
            f"the help of input {name} is longer than {MAX_HELP_LENGTH} characters",
            field="inputs",
        )
    if help_text:
        prop["description"] = help_text
    default = raw.get("default")
    if default is not None and default != "":
        default = _coerce_default(name, kind, default)
        try:
            Draft202012Validator(prop, format_checker=_FORMATS).validate(default)
        except SchemaError:
            fits = (
                f"is not one of its choices ({', '.join(prop['enum'])})"
                if "enum" in prop
                else f"does not fit the type {kind}"
            )
            raise ValidationError(f"input {name}: the default {fits}", field="inputs") from None
        prop["default"] = default
    return prop


def _coerce_default(name: str, kind: str, value: Any) -> Any:
    # The editor sends what was typed; a number typed as "3" is meant as 3.
    if kind == "number" and isinstance(value, str):
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            raise ValidationError(
                f"input {name}: the default is not a number", field="inputs"
            ) from None
    return value


def kind_of(prop: dict[str, Any]) -> str:
    """The editor's type name for one schema property."""
    if "enum" in prop:
        return "choice"
    if prop.get("format") == "date":
        return "date"
    return {"string": "text", "number": "number", "boolean": "boolean"}.get(
        str(prop.get("type")), "json"
    )


def fields_from_schema(schema: Any) -> list[dict[str, Any]]:
    """The editor's field list for a stored schema (the inverse of schema_from_fields)."""
    if not isinstance(schema, dict):
        return []
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    return [
        {
            "name": name,
            "type": kind_of(prop),
            "required": name in required,
            "default": prop.get("default"),
            "help": prop.get("description", ""),
            "choices": prop.get("enum", []),
        }
        for name, prop in properties.items()
    ]


def check_input(schema: Any, value: Any) -> Any:
    """The run's input with declared defaults filled in; a ValidationError naming the field
    when it does not fit the declaration."""
    if not isinstance(schema, dict) or not schema.get("properties"):
        return value
    if value is None:
        value = {}
    if isinstance(value, dict):
        value = dict(value)
        for name, prop in schema["properties"].items():
            if name not in value and "default" in prop:
                value[name] = prop["default"]
    error = next(
        iter(
            sorted(
                Draft202012Validator(schema, format_checker=_FORMATS).iter_errors(value),
                key=lambda e: list(e.path),
            )
        ),
        None,
    )
    if error is not None:
        raise _in_words(schema, error)
    return value


def _in_words(schema: dict[str, Any], error: SchemaError) -> ValidationError:
    if not error.path:
        if error.validator == "required":
            present = error.instance if isinstance(error.instance, dict) else {}
            name = next((n for n in schema.get("required", []) if n not in present), "")
            return ValidationError(f"{name} is required", field=f"input.{name}")
        if error.validator == "additionalProperties":
            known = ", ".join(schema["properties"]) or "none"
            return ValidationError(
                f"the input has a field this script does not declare (declared: {known})",
                field="input",
            )
        return ValidationError("the input must be an object of the declared fields", field="input")
    name = str(error.path[0])
    kind = kind_of(schema["properties"].get(name, {}))
    if kind == "choice":
        choices = ", ".join(schema["properties"][name]["enum"])
        message = f"{name} must be one of: {choices}"
    elif kind == "date":
        message = f"{name} must be a date like {date.today().isoformat()}"
    elif kind == "boolean":
        message = f"{name} must be true or false"
    else:
        message = f"{name} must be {'a number' if kind == 'number' else 'text'}"
    return ValidationError(message, field=f"input.{name}")
