"""What the call log narrows by (integration, user, script, status), read from the call log
page's address as the Runs page reads its own (run_filters.read_said); no database access."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from app.errors import ValidationError
from app.services.run_filters import Reader, parse_int, read_said

# A call's outcome as the call log filters it: ok (an answer under 400, no error), error.
CallStatus = Literal["ok", "error"]
CALL_STATUSES: tuple[str, ...] = get_args(CallStatus)


@dataclass(frozen=True)
class CallFilters:
    """The call log's filters as its page's address gives them; None means any. The page
    lists the calls through the API, which filters them; these say what it cannot read."""

    integration: str | None = None
    user: int | None = None
    script: int | None = None
    status: CallStatus | None = None

    # Values the page could not read from its address, each a sentence naming the field by
    # its label: no call is listed while one is there (the Runs page's `refused`).
    refused: tuple[str, ...] = ()

    @classmethod
    def read(cls, args: Any) -> CallFilters:
        """Filters from the call log page's address (run_filters.read_said)."""
        values, refused = read_said(args, _READERS, PAGE_WORDS)
        return cls(**values, refused=refused)

    def as_args(self) -> dict[str, str]:
        """The filters read, as query arguments (for a link that keeps them)."""
        values = {"integration": self.integration, "user": self.user, "script": self.script,
                  "status": self.status}
        return {k: str(v) for k, v in values.items() if v is not None}


def _text(value: Any, field: str) -> str | None:
    return str(value) if value not in (None, "") else None


def _status(value: Any, field: str) -> CallStatus | None:
    if value in (None, ""):
        return None
    if value not in CALL_STATUSES:
        raise ValidationError(f"{field} must be one of {', '.join(CALL_STATUSES)}", field=field)
    return "ok" if value == "ok" else "error"


# Each query argument of the page's address, with the field it fills and how it is read.
_READERS: dict[str, tuple[str, Reader]] = {
    "integration": ("integration", _text),
    "user": ("user", parse_int),
    "script": ("script", parse_int),
    "status": ("status", _status),
}
# The page's words for each argument (its form's label) and what it takes.
PAGE_WORDS: dict[str, tuple[str, str]] = {
    "integration": ("Integration", "one of the integrations in its list"),
    "user": ("User", "one of the members in its list"),
    "script": ("Script", "one of the scripts in its list"),
    "status": ("Status", "OK or Errors"),
}
