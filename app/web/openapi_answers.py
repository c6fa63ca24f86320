"""What the API answers, as its document declares it: the type of a view's answer, the one
error shape every operation may answer, lists and files, and the headers answers carry
(an operation's own, `reply(..., sends=...)`, and a list's paging headers, which the
document adds to every operation that takes a `cursor`: app/web/openapi.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from flask import Response as FlaskResponse
from pydantic import BaseModel, ConfigDict, RootModel
from spectree import Response
from spectree.utils import get_model_key

# What an API view returns: a declared model or JSON data, alone or with a status (and
# headers). Not flask.typing.ResponseReturnValue: spectree reads the views' type hints at
# run time and that alias names types Flask imports only for type checkers.
_Data = BaseModel | dict[str, Any] | list[Any] | str | FlaskResponse  # a file: FileAnswer
Answer = _Data | tuple[_Data, int] | tuple[_Data, int, dict[str, str]]

# The error statuses any API operation may answer, each with the one error shape: 503
# too (`database_unavailable` with Retry-After, while the database cannot be reached).
ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 415, 429, 503)

# The header holding the next page's cursor of a list answer (see app/web/api/paging.py).
NEXT_HEADER = "Next-Cursor"
# What every page of a list answers besides its rows, while another page follows.
PAGE_HEADERS = {
    NEXT_HEADER: {
        "description": "The `cursor` of the next page; absent on the last page",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": 'The next page\'s URL as `<url>; rel="next"`; absent on the last page',
        "schema": {"type": "string"},
    },
}


# Headers an operation's answers carry when it says so (reply(..., sends=...)), each
# described once here: the document declares them on that operation's 2xx answers.
LOCATION_HEADER = "Location"
REPLAYED_HEADER = "Idempotent-Replayed"
_SENT_HEADERS = {
    LOCATION_HEADER: {
        "description": "The absolute URL (under the server's public address) of what the"
        " request made or started: GET it there",
        "schema": {"type": "string", "format": "uri"},
    },
    REPLAYED_HEADER: {
        "description": "`true` when the answer is the run an earlier request with the same"
        " `Idempotency-Key` started (nothing new was started); absent when this request"
        " started it",
        "schema": {"type": "string", "enum": ["true"]},
    },
}


class FileAnswer(RootModel[str]):
    """An answer that is a file, not JSON (an export), streamed as it is read: subclasses
    say its media types (MEDIA: type -> description) and headers (HEADERS: name ->
    description), which the document shows in place of a JSON schema. Not checked
    against a model: that would read the whole stream first."""

    MEDIA: ClassVar[dict[str, str]] = {}
    HEADERS: ClassVar[dict[str, str]] = {}


class ErrorDetail(BaseModel):
    """What went wrong: a stable code, words for people, the input field when one is to blame."""

    model_config = ConfigDict(extra="allow")
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """The one error shape of the API."""

    error: ErrorDetail


def list_of(model: type[BaseModel]) -> type[RootModel[Any]]:
    """A response model for a JSON array of `model`."""
    return RootModel[list[model]]  # type: ignore[valid-type]


class _Reply(Response):
    """spectree's Response, with the headers the operation's 2xx answers send (`sends`,
    names from _SENT_HEADERS): spectree declares no response headers of its own."""

    def __init__(self, *codes: str, sends: Sequence[str] = (), **models: Any) -> None:
        super().__init__(*codes, **models)
        # Looked up now: a name not in _SENT_HEADERS fails at import, not in the document.
        self.sent_headers = {name: _SENT_HEADERS[name] for name in sends}

    def generate_spec(self, naming_strategy: Any = get_model_key) -> dict[str, Any]:
        responses: dict[str, Any] = super().generate_spec(naming_strategy)
        for status, answer in responses.items():
            if self.sent_headers and status.startswith("2"):
                answer["headers"] = dict(self.sent_headers)
        return responses


def reply(
    *no_content: str,
    sends: Sequence[str] = (),
    **models: type[BaseModel] | tuple[type[BaseModel], str],
) -> Response:
    """The documented answers of an operation: its own (HTTP_200=Model, "HTTP_204", or
    HTTP_410=(ErrorBody, "when and what to do") for an error only it gives) + errors;
    `sends` names the headers its 2xx answers carry (LOCATION_HEADER for a POST that makes
    something: base.location)."""
    errors: dict[str, type[BaseModel] | tuple[type[BaseModel], str]] = {
        f"HTTP_{status}": ErrorBody for status in ERROR_STATUSES
    }
    return _Reply(*no_content, sends=sends, **{**errors, **models})
