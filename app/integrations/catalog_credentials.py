"""Validating where a catalog entry's credentials go: the fields each account enters, the
placements that carry them (a header, a query parameter or Basic auth), and whether every
declared credential is sent. Standard library only; called by catalog_validation.

(placements.py fills validated placements with an account's values at call time.)
"""

from __future__ import annotations

from dataclasses import fields
from typing import cast, get_args

from app.integrations.catalog_entry import (
    CREDENTIAL_FIELDS,
    CREDENTIAL_MODES,
    DEFAULT_CREDENTIAL_FIELDS,
    Location,
    Placement,
    default_placements,
    routing_header,
)
from app.integrations.catalog_reader import (
    HEADER_NAME_RE,
    QUERY_NAME_RE,
    EntryReader,
    check_template,
    template_fields,
)

_FIELDS = frozenset(f.name for f in fields(Placement))


def credential_fields_of(r: EntryReader, auth_mode: str) -> tuple[str, ...]:
    """The fields each account enters: the entry's list or the auth mode's default."""
    credential_fields = r.text_list("credential_fields") or DEFAULT_CREDENTIAL_FIELDS.get(
        auth_mode, ()
    )
    for credential in credential_fields:
        if credential not in CREDENTIAL_FIELDS:
            raise r.error("credential_fields", f"unknown credential field {credential!r}")
    if len(set(credential_fields)) != len(credential_fields):
        raise r.error("credential_fields", "lists a field twice")
    return credential_fields


def placement_placeholders(
    r: EntryReader, placements: tuple[Placement, ...], allowed: set[str]
) -> set[str]:
    """The placeholders the placements\' templates use, each one of `allowed`."""
    templated: set[str] = set()
    for index, placement in enumerate(placements):
        templated |= check_template(r, f"placements[{index}].template", placement.template, allowed)
        if placement.password_template is not None:
            where = f"placements[{index}].password_template"
            templated |= check_template(r, where, placement.password_template, allowed)
    return templated


def placements_of(
    r: EntryReader, auth_mode: str, credential_fields: tuple[str, ...]
) -> tuple[Placement, ...]:
    """Where the credential goes: the entry\'s placements or the auth mode\'s default."""
    if "placements" not in r.raw:
        defaults = default_placements(auth_mode, credential_fields)
        if defaults:
            return defaults
    placements: list[Placement] = []
    for index, raw in enumerate(r.items("placements")):
        p = r.nested(f"placements[{index}]", raw)
        p.reject_unknown(_FIELDS)
        location = cast(Location, p.choice("location", get_args(Location)))
        template = p.text("template")
        if location == "basic":
            if p.raw.get("name") is not None:
                raise p.error("name", "must be null for a basic placement")
            password = p.raw.get("password_template")
            if not isinstance(password, str):
                raise p.error("password_template", "is required for a basic placement")
            placements.append(Placement("basic", None, template, password))
            continue
        if p.raw.get("password_template") is not None:
            raise p.error("password_template", "only used by a basic placement")
        name = p.text("name")
        name_re = HEADER_NAME_RE if location == "header" else QUERY_NAME_RE
        if not name_re.fullmatch(name):
            raise p.error("name", f"invalid {location} name {name!r}")
        if location == "header" and routing_header(name):
            raise p.error("name", f"{name} is set by the server; a credential cannot go there")
        if any(c in template for c in "\r\n"):
            raise p.error("template", "must not contain line breaks")
        placements.append(Placement(location, name, template))
    if auth_mode == "none" and placements:
        raise r.error("placements", "must be empty for auth_mode none")
    if auth_mode != "none" and not placements:
        raise r.error(
            "placements",
            "say where the credential goes: at least one placement (a header, a query"
            " parameter or Basic auth)",
        )
    targets = [(p.location, (p.name or "").lower()) for p in placements]
    if len(set(targets)) != len(targets):
        raise r.error("placements", "two placements write the same header, query name or Basic")
    return tuple(placements)


def check_credentials(
    r: EntryReader,
    auth_mode: str,
    fields: tuple[str, ...],
    placements: tuple[Placement, ...],
    templated: set[str],
) -> None:
    """Every declared credential is sent, and the auth mode gets the fields it takes."""
    declared = set(fields)
    if auth_mode not in CREDENTIAL_MODES:  # fields_for_mode already kept credential_fields out
        if auth_mode != "none" and "token" not in templated:
            raise r.error("placements", "no placement sends {token}")
        return
    if auth_mode == "api_key" and declared != {"api_key"}:
        raise r.error("credential_fields", "auth_mode api_key takes exactly api_key")
    if auth_mode == "api_key_secret" and declared != {"api_key", "api_secret"}:
        raise r.error("credential_fields", "auth_mode api_key_secret takes api_key and api_secret")
    if auth_mode == "basic":
        basic = [p for p in placements if p.location == "basic"]
        if not basic:
            raise r.error("placements", "auth_mode basic needs a basic placement")
        basic_uses = template_fields(basic[0].template) | template_fields(
            basic[0].password_template or ""
        )
        if not ({"username", "password"} <= declared or "api_key" in declared & basic_uses):
            raise r.error(
                "credential_fields",
                "auth_mode basic takes username and password, or an api_key the basic "
                "placement uses",
            )
    for credential in fields:
        if credential not in templated:
            raise r.error("credential_fields", f"{credential!r} is declared but never sent")
