"""The API's declarations in one place: pydantic models validate requests and answers and
spectree turns the same models into the OpenAPI 3.1 document at /api/openapi.json.

Why spectree + pydantic: pydantic v2 emits JSON Schema 2020-12, which is OpenAPI 3.1's own
schema dialect, so the document is the validators' schema and not a translation of it;
spectree decorates plain Flask views on plain blueprints (flask-openapi3 and APIFlask need
their own app class, flask-smorest speaks marshmallow and documents 3.1 only partly).
Validation failures become our ValidationError, so every wrong input is the one JSON error
shape with the field named. What the answers are (the error shape, lists, files, headers)
is declared in app/web/openapi_answers.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Annotated, Any, get_args, get_origin

from flask import Flask, current_app, jsonify, render_template, request
from flask import Response as FlaskResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from pydantic import ValidationError as PydanticError
from spectree import Response, SpecTree
from spectree.model_adapter import get_pydantic_model_adapter
from spectree.plugins.flask_plugin import FlaskPlugin
from werkzeug.datastructures import ImmutableMultiDict

from app.db import MAX_INTEGER
from app.errors import ValidationError
from app.web.openapi_answers import PAGE_HEADERS, ErrorBody, FileAnswer

# A whole number from a query string: digits only, within what the database stores.
QueryInt = Annotated[int, Field(ge=-MAX_INTEGER, le=MAX_INTEGER)]
TextMap = dict[StrictStr, StrictStr]

# The cache-buster jQuery's `cache: false` and many HTTP tools add to a GET (`?_=1712345678`,
# so that no cache answers in the server's place): a GET ignores it (it reads nothing, so it
# can misspell no filter), every other method refuses it as any parameter it does not take.
CACHE_BUSTER = "_"
_CACHE_BUSTER_METHODS = frozenset({"GET", "HEAD"})
_CACHE_BUSTER_PARAMETER = {
    "name": CACHE_BUSTER,
    "in": "query",
    "required": False,
    "description": "Ignored: a cache-buster (jQuery's `cache: false` adds one); GET only",
    "schema": {"type": "string"},
}

class Body(BaseModel):
    """A JSON request body: strict types (no "1" for 1, no 1 for true).

    Unknown keys are ignored, as they always were: clients send objects they also use
    elsewhere, and one field more must not break them.
    """

    model_config = ConfigDict(strict=True, extra="ignore")


class Query(BaseModel):
    """Query-string values: text converted to the declared type. An unknown parameter is a
    400 naming it and the ones the operation takes (`_before`, in `unknown_parameters`'
    words): a misspelt filter (`statuss=failed`) was ignored, and the list answered with
    every row as if it had filtered them."""

    model_config = ConfigDict(extra="forbid")


# Text objects whose wrong values name the value's own field, as the forms do
# (credential `fields` by their name, `parameters` as param_<name>).
_ITEM_FIELDS = {"fields": "{key}", "parameters": "param_{key}"}


def _field_of(error: PydanticError) -> tuple[str, str]:
    first = error.errors()[0]
    loc = first["loc"]
    location = [str(part) for part in loc]
    field = location[0] if location else "body"
    if len(loc) == 2 and field in _ITEM_FIELDS and isinstance(loc[1], str):
        field = _ITEM_FIELDS[field].format(key=loc[1])
    if first["type"] == "missing":
        return field, f"{field} is required"
    return field, f"{field}: {first['msg']}"


def _declared_body(view: Callable[..., Any]) -> type[BaseModel] | None:
    metadata = spec.get_function_metadata(view)
    key = metadata.json if metadata else None
    model: type[BaseModel] | None = _body_models.get(key) if key else None
    return model


def _declared_query(view: Callable[..., Any]) -> type[BaseModel] | None:
    metadata = spec.get_function_metadata(view)
    key = metadata.query if metadata else None
    model: type[BaseModel] | None = spec.classes.get(key) if key else None
    return model


@cache  # read on every API request; a model's fields are fixed once its class is made
def accepted_parameters(model: type[BaseModel] | None) -> tuple[str, ...]:
    """The query parameters an operation takes (none without a query model): its own
    before those it shares, so a list names its filters before `limit` and `cursor`.
    A tuple: the one cached answer is shared by every request."""
    if model is None:
        return ()
    names: list[str] = []
    for cls in model.__mro__:
        for name in vars(cls).get("__annotations__", {}):
            field = model.model_fields.get(name)
            shown = (field.alias or name) if field is not None else None
            if shown is not None and shown not in names:
                names.append(shown)
    return tuple(names)


def unknown_parameters(unknown: list[str], accepted: Sequence[str]) -> ValidationError:
    """The 400 for query parameters an operation does not take, naming them and the ones
    it does (the first unknown one is `field`; all are `unknown`, the taken `accepted`)."""
    plural = "s" if len(unknown) > 1 else ""
    named = ", ".join(f"`{name}`" for name in unknown)
    what = "this list" if "cursor" in accepted else "this operation"
    takes = f"takes {', '.join(accepted)}" if accepted else "takes no query parameters"
    return ValidationError(
        f"Unknown query parameter{plural} {named}: {what} {takes}.",
        field=unknown[0],
        unknown=unknown,
        accepted=list(accepted),
    )


def repeated_parameter(name: str, times: int) -> ValidationError:
    """The 400 for a query parameter given more than once (`?status=failed&status=timed_out`):
    each takes one value. pydantic's words for the list it got named the type the value
    should have, or every status as the ones allowed, the two given among them."""
    return ValidationError(
        f"`{name}` is given {times} times: it takes one value (for several, send one "
        "request for each)",
        field=name,
    )


def _ignore_cache_buster() -> None:
    """Take a GET's cache-buster out of its query before anything reads it: the model, the
    unknown-parameter check, a list's Link to its next page."""
    if request.method in _CACHE_BUSTER_METHODS and CACHE_BUSTER in request.args:
        request.args = ImmutableMultiDict(
            [(k, v) for k, v in request.args.items(multi=True) if k != CACHE_BUSTER]
        )


def _before(
    req: Any, _response: Any, error: Exception | None, _instance: Any, _adapter: Any
) -> None:
    """Turn spectree's validation outcome into our ValidationError; insist on JSON objects;
    refuse query parameters the operation does not take (before any other problem: a
    misspelt name explains the rest)."""
    view = current_app.view_functions.get(request.endpoint or "")
    accepted = accepted_parameters(_declared_query(view) if view else None)
    unknown = [name for name in request.args if name not in accepted]
    if unknown:
        raise unknown_parameters(unknown, accepted)
    repeated = [name for name in accepted if len(request.args.getlist(name)) > 1]
    if repeated:
        raise repeated_parameter(repeated[0], len(request.args.getlist(repeated[0])))
    model = _declared_body(view) if view else None
    if model is not None and request.method in ("POST", "PUT", "PATCH"):
        raw = request.get_data(cache=True)
        if raw.strip():
            if not request.is_json:
                raise ValidationError(
                    "send the body as JSON, with Content-Type: application/json", field="body")
            # spectree reads a body it cannot parse, or `null`/`[]`, as {}: refuse those here.
            if not isinstance(request.get_json(silent=True), dict):  # parsed once, cached
                try:
                    current_app.json.loads(raw)
                except ValueError as unreadable:  # JSONDecodeError too: where, in its words
                    raise ValidationError(f"the body is not valid JSON: {unreadable}",
                                          field="body") from None
                raise ValidationError("send a JSON object", field="body")
        elif error is None:
            # No body at all is an empty object (curl -X POST without -d; a page's fetch
            # with a JSON content type and no body).
            try:
                req.context = req.context._replace(json=model.model_validate({}))
            except PydanticError as exc:
                error = exc
    if isinstance(error, PydanticError):
        field, message = _field_of(error)
        raise ValidationError(message, field=field)


# Body models by spectree's model key, so the hook can tell which views read a JSON body.
_body_models: dict[str, type[BaseModel]] = {}


def model_name(model: Any) -> str:
    """A model's name in the document: its class's ("RunOut"), or "RunOutList" for a list
    of RunOut. spectree's default suffixes a hash of the module ("RunOut.04f4921") and
    repeats each nested model under every parent, names a client generator turns into its
    types' names; so two models must not share a name (test_openapi checks it)."""
    root = getattr(model, "model_fields", {}).get("root")
    if root is not None and get_origin(root.annotation) is list:
        (item,) = get_args(root.annotation)
        return f"{model_name(item)}List"
    return str(model.__name__)


class _Spec(SpecTree):
    """SpecTree that remembers the models it declared (`classes`, by name) and which of
    them are bodies."""

    classes: dict[str, Any] = {}

    def _add_model(self, model: Any, mode: Any = "validation") -> str:
        key = super()._add_model(model, mode)
        self.classes[key] = model
        if mode == "validation" and isinstance(model, type) and issubclass(model, Body):
            _body_models[key] = model
        return key

    def _generate_spec(self) -> dict[str, Any]:
        # spectree declares no response headers: a list's (one that takes a `cursor`) are
        # added here, so a generated client knows where the next page is (an operation's
        # own, `sends`, by _Reply).
        document: dict[str, Any] = super()._generate_spec()
        files: set[str] = set()
        for operations in document["paths"].values():
            for method, operation in operations.items():
                if method.upper() in _CACHE_BUSTER_METHODS:
                    operation.setdefault("parameters", []).append(_CACHE_BUSTER_PARAMETER)
                queries = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
                if "cursor" in queries and "200" in operation["responses"]:
                    operation["responses"]["200"]["headers"] = PAGE_HEADERS
                files.update(self._as_files(operation["responses"]))
        for name in files:  # each shown as its media types, not as a schema of its own
            document["components"]["schemas"].pop(name, None)
        return document

    def _as_files(self, responses: dict[str, Any]) -> set[str]:
        """Show the answers that are files (FileAnswer) in their media types; their names."""
        names = set()
        for answer in responses.values():
            ref = answer.get("content", {}).get("application/json", {}).get("schema", {})
            name = ref.get("$ref", "").rsplit("/", 1)[-1]
            model = self.classes.get(name)
            if isinstance(model, type) and issubclass(model, FileAnswer):
                answer["content"] = {
                    media: {"schema": {"type": "string"}, "x-description": words}
                    for media, words in model.MEDIA.items()
                }
                answer["headers"] = {
                    header: {"description": words, "schema": {"type": "string"}}
                    for header, words in model.HEADERS.items()
                }
                names.add(name)
        return names


def validates_responses(app: Flask) -> bool:
    """Whether the app checks its API answers against their models (VALIDATE_RESPONSES)."""
    configured = app.config.get("VALIDATE_RESPONSES")
    return bool(app.testing or app.debug) if configured is None else bool(configured)


class _Plugin(FlaskPlugin):
    """spectree's Flask plugin, checking answers only where the app asks for it: the check
    was a twentieth of a POST /runs in production (py-spy), for what the tests check.
    A GET's cache-buster (`_`) is taken out of the query first."""

    def validate(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        _ignore_cache_buster()
        return super().validate(func, *args, **kwargs)

    def validate_response(
        self, resp: Any, resp_model: Response | None, skip_validation: bool,
        force_resp_serialize: bool,
    ) -> Any:
        if isinstance(resp, FlaskResponse) and resp.is_streamed:
            return resp, None  # a file (FileAnswer) as it is read: never held whole
        if not validates_responses(current_app):
            resp_model = None  # serialized as it is
        return super().validate_response(resp, resp_model, skip_validation, force_resp_serialize)


spec = _Spec(
    "flask",
    backend=_Plugin,
    mode="strict",
    title="Scriptbox API",
    version="1",
    description=(
        "Scripts, their schedules, runs, integrations and accounts of a facility. Scheduled"
        " runs are not interactive (see the schedules tag). Authenticate with"
        " `Authorization: Bearer <API token>` (create one under Settings → API tokens, or"
        " POST /api/tokens from a signed-in browser session: a token cannot make tokens)."
    ),
    # spectree leaves out routes under its own path, so it must not be "api"; its own
    # routes are not registered (init_app serves the document at /api/openapi.json).
    path="_spectree",
    page_templates={},
    before=_before,
    validation_error_status=400,
    validation_error_model=ErrorBody,
    model_adapter=get_pydantic_model_adapter(),
    naming_strategy=model_name,
    nested_naming_strategy=lambda parent, child: child,  # one component per nested model
    security_schemes=[
        {
            "name": "token",
            "data": {"type": "http", "scheme": "bearer"},
        }
    ],
    security={"token": []},
)


def init_app(app: Flask) -> None:
    """Serve /api/openapi.json (public) and the bundled reference page at /api/docs."""

    @app.get("/api/openapi.json")
    def openapi_document() -> FlaskResponse:
        """The OpenAPI 3.1 document of the API (public: it holds no data)."""
        return jsonify(spec.spec)

    @app.get("/api/docs")
    def api_reference() -> str:
        """The browsable API reference (Swagger UI, vendored; see static/apidocs)."""
        return render_template("api_docs.html")
