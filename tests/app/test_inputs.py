"""Declared inputs (issue 11, item 2): the editor's fields become JSON Schema, and a run's
input is checked against it with jsonschema, each refusal naming the field in words."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import ValidationError
from app.services.inputs import check_input, fields_from_schema, schema_from_fields

FIELDS = [
    {"name": "name", "type": "text", "required": True, "help": "Who to greet"},
    {"name": "times", "type": "number", "default": "2"},
    {"name": "colour", "type": "choice", "choices": ["red", "green"]},
    {"name": "when", "type": "date"},
    {"name": "loud", "type": "boolean", "default": False},
    {"name": "extra", "type": "json"},
]
SCHEMA = schema_from_fields(FIELDS)


def test_the_schema_is_json_schema_and_round_trips_to_the_fields() -> None:
    assert SCHEMA["required"] == ["name"]
    assert SCHEMA["properties"]["colour"] == {"title": "colour", "type": "string",
                                              "enum": ["red", "green"]}
    assert SCHEMA["properties"]["when"]["format"] == "date"
    assert SCHEMA["properties"]["times"]["default"] == 2
    assert "type" not in SCHEMA["properties"]["extra"]
    back = fields_from_schema(SCHEMA)
    assert [(f["name"], f["type"], f["required"]) for f in back] == [
        ("name", "text", True), ("times", "number", False), ("colour", "choice", False),
        ("when", "date", False), ("loud", "boolean", False), ("extra", "json", False),
    ]
    assert schema_from_fields(back) == SCHEMA


def test_defaults_fill_in_and_good_input_passes() -> None:
    value = check_input(SCHEMA, {"name": "Ada", "when": "2026-02-03", "extra": [1, {"a": 2}]})
    assert value == {"name": "Ada", "when": "2026-02-03", "extra": [1, {"a": 2}], "times": 2,
                     "loud": False}


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        ({}, "input.name", "name is required"),
        (None, "input.name", "name is required"),
        ({"name": 5}, "input.name", "name must be text"),
        ({"name": "A", "times": "two"}, "input.times", "times must be a number"),
        ({"name": "A", "colour": "blue"}, "input.colour", "colour must be one of: red, green"),
        ({"name": "A", "when": "3 March"}, "input.when", "when must be a date like"),
        ({"name": "A", "loud": "yes"}, "input.loud", "loud must be true or false"),
        ({"name": "A", "surprise": 1}, "input", "a field this script does not declare"),
        ([1, 2], "input", "must be an object"),
    ],
)
def test_wrong_input_is_refused_naming_the_field(value: Any, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_input(SCHEMA, value)
    assert caught.value.details["field"] == field
    assert message in caught.value.message


def test_no_declaration_accepts_any_json() -> None:
    assert check_input({}, [1, "two"]) == [1, "two"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([{"name": "1st", "type": "text"}], "letters, digits and _"),
        # The message names the input (the editor shows it as "Not saved: ...").
        ([{"name": "a", "type": "text"}, {"name": " a", "type": "number"}],
         "two inputs are called a"),
        ([{"name": "a", "type": "colour"}], "the type must be one of"),
        ([{"name": "a", "type": "choice", "choices": []}], "choices"),
        ([{"name": "a", "type": "number", "default": "many"}], "not a number"),
        ([{"name": "a", "type": "date", "default": "soon"}], "does not fit the type date"),
        ([{"name": "a", "type": "boolean", "default": "yes"}], "does not fit the type boolean"),
        ([{"name": "a", "type": "boolean", "default": "true"}], "does not fit the type boolean"),
        # Which choices fit, not "does not fit the type choice".
        ([{"name": "a", "type": "choice", "choices": ["red", "blue"], "default": "green"}],
         "input a: the default is not one of its choices (red, blue)"),
        ([{"name": "a", "type": "text", "help": "h" * 301}], "longer than 300 characters"),
        ("name", "must be a list"),
    ],
)
def test_a_declaration_that_does_not_fit_is_refused(fields: Any, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        schema_from_fields(fields)
    assert message in caught.value.message
    assert caught.value.details["field"] == "inputs"
