"""What a connected account may be: its label, its connection parameters, and how many
accounts of an integration one person may connect (the admin's setting `accounts_per_user`):
"several", told apart by labels, or "one".

With "one", connecting again under the same label reconnects that account (new credentials,
same account); a second account under another label is refused, saying which one exists, so
nobody loses an account they did not mean to replace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import InvalidFields, OneAccountPerPerson, ValidationError
from app.integrations.catalog_entry import DEFAULT_PARAMETER_PATTERN, MAX_LABEL_LENGTH
from app.models import Account, Integration

_LABEL = re.compile(r"[A-Za-z0-9 _.-]*")
# What _LABEL takes, in words (the refusal says it; the pages' hint too). Its letters are
# A-Z and a-z only: "letters" alone refused "Büro" while saying letters were fine.
LABEL_CHARACTERS = "letters A-Z and a-z (no accents), digits, spaces, '.', '-' and '_'"


def validate_label(label: Any) -> str:
    """An account label: a few letters, digits, spaces, dots, dashes and underscores."""
    if label is not None and not isinstance(label, str):
        raise ValidationError("the label must be text", field="label")
    text = (label or "").strip()
    if len(text) > MAX_LABEL_LENGTH:
        raise ValidationError(f"labels may be at most {MAX_LABEL_LENGTH} characters", field="label")
    if not _LABEL.fullmatch(text):
        raise ValidationError(
            f"labels may hold {LABEL_CHARACTERS}", field="label"
        )
    return text


def validate_parameters(
    integration: Integration, given: Mapping[str, Any] | None
) -> dict[str, str]:
    """Connection parameters, each fully matching its declared pattern."""
    if given is not None and not isinstance(given, Mapping):
        raise ValidationError("parameters must be a JSON object", field="parameters")
    given = dict(given or {})
    values: dict[str, str] = {}
    problems: list[ValidationError] = []
    for parameter in integration.parameters or []:
        name = parameter["name"]
        value = str(given.get(name) or "").strip()
        words, field = parameter.get("label") or name, f"param_{name}"
        if not value:
            problems.append(ValidationError(f"enter {words}", field=field))
        elif not re.fullmatch(parameter.get("pattern") or DEFAULT_PARAMETER_PATTERN, value):
            problems.append(
                ValidationError(f"{words} has characters that are not allowed", field=field)
            )
        else:
            values[name] = value
    if problems:
        raise InvalidFields.of(problems)
    return values


def check_slot(
    session: Session, integration: Integration, *, owner: str, user_id: int | None, label: str
) -> None:
    """Refuse a person's second account where the integration takes one per person."""
    if owner != "user" or integration.accounts_per_user != "one":
        return
    others = session.scalars(
        select(Account.label).where(
            Account.integration_id == integration.id,
            Account.owner_kind == "user",
            Account.user_id == user_id,
            Account.label != label,
        )
    ).all()
    if others:
        existing = f"'{others[0]}'" if others[0] else "your default account"
        raise OneAccountPerPerson(
            f"{integration.name} takes one account per person, and {existing} is connected "
            "already. Reconnect that one, or disconnect it before connecting another.",
            field="label",
        )
