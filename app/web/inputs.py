"""Request input checked by type: the JSON body, its fields and query values.

Every helper raises ValidationError naming the field, so wrong input of any type is a
400 that says what to fix, never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import request

from app.errors import ValidationError

# The most rows one list answer holds; `limit` is clamped into 1..MAX_PAGE.
MAX_PAGE = 200

# Whole numbers beyond a signed 64-bit integer cannot reach the database (SQLite raises).
MAX_INTEGER = 2**63 - 1
_INTEGER = re.compile(r"-?[0-9]{1,19}")


def body() -> dict[str, Any]:
    """The request's JSON object (or form fields); anything else is a 400."""
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ValidationError("send a JSON object", field="body")
        return data
    return request.form.to_dict()


def text(
    data: Mapping[str, Any], field: str, *, default: str = "", max_length: int | None = None
) -> str:
    """A text field (absent or null gives `default`)."""
    value = data.get(field)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be text", field=field)
    if max_length is not None and len(value) > max_length:
        raise ValidationError(f"{field} is longer than {max_length} characters", field=field)
    return value


def optional_text(data: Mapping[str, Any], field: str) -> str | None:
    """A text field that may be absent or null (None)."""
    return text(data, field) if data.get(field) is not None else None


def boolean(data: Mapping[str, Any], field: str) -> bool | None:
    """A true/false field (None when absent or null)."""
    value = data.get(field)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ValidationError(f"{field} must be true or false", field=field)
    return value


def integer(value: Any, field: str) -> int:
    """A whole number given as a JSON number or as digits (query strings)."""
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_INTEGER:
        raise ValidationError(f"{field} must be a whole number", field=field)
    return value


def number(data: Mapping[str, Any], field: str, *, default: float) -> float:
    """A number field (absent or null gives `default`)."""
    value = data.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValidationError(f"{field} must be a number", field=field)
    try:
        result = float(value)
    except (ValueError, OverflowError):
        raise ValidationError(f"{field} must be a number", field=field) from None
    if result != result or result in (float("inf"), float("-inf")):
        raise ValidationError(f"{field} must be a number", field=field)
    return result


def mapping(data: Mapping[str, Any], field: str) -> dict[str, Any]:
    """An object field (absent or null gives {})."""
    value = data.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"{field} must be an object", field=field)
    return value


def text_mapping(
    data: Mapping[str, Any], field: str, *, item_field: str | None = None
) -> dict[str, str]:
    """An object field whose values are all text (credentials, connection parameters).

    A wrong value names `item_field` with its key filled in (e.g. "param_{key}", the
    form's name for it), else the whole field.
    """
    value = mapping(data, field)
    for key, item in value.items():
        if not isinstance(item, str):
            name = item_field.format(key=key) if item_field else field
            raise ValidationError(f"{field}.{key} must be text", field=name)
    return value


def page_limit(args: Mapping[str, Any], *, default: int = 50) -> int:
    """The `limit` query value clamped into 1..MAX_PAGE."""
    raw = args.get("limit")
    limit = default if raw in (None, "") else integer(raw, "limit")
    return max(1, min(limit, MAX_PAGE))


def object_list(data: Mapping[str, Any], field: str) -> list[dict[str, Any]]:
    """An array-of-objects field (absent or null gives [])."""
    value = data.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValidationError(f"{field} must be an array of objects", field=field)
    return value


def text_list(data: Mapping[str, Any], field: str) -> list[str]:
    """An array-of-text field (absent or null gives [])."""
    value = data.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError(f"{field} must be an array of text", field=field)
    return value


# The JSON type of each integration setting; the catalog validator checks the values.
_INTEGRATION_TYPES = {
    **dict.fromkeys(
        (
            "key",
            "name",
            "auth_mode",
            "base_url",
            "authorization_url",
            "token_url",
            "revoke_url",
            "token_request_method",
            "token_auth_method",
            "scope_separator",
            "client_id",
            "client_secret",
            "accounts_per_user",
        ),
        text,
    ),
    **dict.fromkeys(("scopes", "credential_fields", "allowed_hosts"), text_list),
    **dict.fromkeys(("placements", "parameters"), object_list),
    **dict.fromkeys(("authorization_params", "default_headers", "default_query"), text_mapping),
    # The verification and who-am-I requests; the catalog checks their fields.
    **dict.fromkeys(("verify", "whoami"), mapping),
    **dict.fromkeys(("pkce", "refresh_on_403", "allow_private_network"), boolean),
}


def integration_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """Integration settings with every known field of the right JSON type."""
    for name, check in _INTEGRATION_TYPES.items():
        check(data, name)  # type: ignore[operator]
    return dict(data)
