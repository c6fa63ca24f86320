"""What a script sees as `integrations`: a proxy that sends each call to the host.

The proxy holds no credentials and no network access; it serializes the call, waits
for the host's answer and turns error answers into the exception classes of DESIGN §2.
"""

from __future__ import annotations

import base64
import json as _json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sandbox import plain
from sandbox.limits import MAX_CALL_BYTES

HostCall = Callable[[str, dict[str, Any]], dict[str, Any]]


class IntegrationError(Exception):
    """Base of every error an integration call can raise; `.code` is stable."""

    code = "integration_error"

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.reason: str | None = details.get("reason")
        self.retry_after: float | None = details.get("retry_after")
        self.status: int | None = details.get("status")
        self.service: str | None = details.get("service")


class NoIntegrationGrant(IntegrationError):
    """No usable account and none could be obtained; `.reason` says why."""

    code = "no_integration_grant"


class UnknownIntegration(IntegrationError):
    """The facility has no integration with that key."""

    code = "unknown_integration"


class ForbiddenDestination(IntegrationError):
    """The request would leave the integration's hosts or set its credential."""

    code = "forbidden_destination"


class IntegrationTimeout(IntegrationError):
    """The service did not answer in time."""

    code = "integration_timeout"


class IntegrationUnavailable(IntegrationError):
    """The service could not be reached."""

    code = "integration_unavailable"


class RateLimited(IntegrationError):
    """429 whose Retry-After does not fit in the run's remaining time."""

    code = "rate_limited"


class HTTPError(IntegrationError):
    """Raised by Response.raise_for_status() for 4xx/5xx answers."""

    code = "http_error"


class InvalidRequest(IntegrationError):
    """The call's arguments are not valid (wrong types, unknown method, bad account)."""

    code = "invalid_request"


class QuotaExceeded(IntegrationError):
    """The facility used up its monthly call quota."""

    code = "quota_exceeded"


class CallLimitExceeded(IntegrationError):
    """The run made more integration calls than its limit allows."""

    code = "call_limit"


ERROR_CLASSES: dict[str, type[IntegrationError]] = {
    cls.code: cls
    for cls in (
        NoIntegrationGrant,
        UnknownIntegration,
        ForbiddenDestination,
        IntegrationTimeout,
        IntegrationUnavailable,
        RateLimited,
        HTTPError,
        InvalidRequest,
        QuotaExceeded,
        CallLimitExceeded,
    )
}


# Read by class, never through `exc.code`: a script's subclass may set any `code` it
# likes, and an uncaught error must not pass for a limit the host enforces.
_OWN_CODES: dict[type[IntegrationError], str] = {IntegrationError: IntegrationError.code}
_OWN_CODES.update({cls: code for code, cls in ERROR_CLASSES.items()})


def error_code(exc: IntegrationError) -> str:
    """The code of the nearest sandbox-defined class of exc (a script's subclass has none)."""
    for cls in type(exc).__mro__:
        code = _OWN_CODES.get(cls)
        if code is not None:
            return code
    return IntegrationError.code


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive response headers."""

    def __init__(self, items: Mapping[str, str]) -> None:
        self._items = {str(k).lower(): (str(k), str(v)) for k, v in items.items()}

    def __getitem__(self, key: str) -> str:
        if not isinstance(key, str):
            raise KeyError(key)
        return self._items[str.lower(key)][1]  # str.lower: a str subclass may lie in .lower

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class Response:
    """An integration's HTTP answer as the script sees it."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.status: int = int(data["status"])
        self.status_code = self.status
        self.headers = Headers(data.get("headers") or {})
        self.content: bytes = base64.b64decode(data.get("body_b64") or "")
        self.url: str = str(data.get("url") or "")
        self.service: str = str(data.get("service") or "")

    @property
    def ok(self) -> bool:
        """True for 2xx and 3xx answers."""
        return self.status < 400

    @property
    def text(self) -> str:
        """The body decoded as text (UTF-8 unless the answer says otherwise)."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return self.content.decode(charset, "replace")
        except LookupError:
            return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(self.text)

    def raise_for_status(self) -> None:
        """Raise integrations.HTTPError for 4xx/5xx answers."""
        if self.status >= 400:
            raise HTTPError(
                f"{self.service or 'service'} answered HTTP {self.status}",
                status=self.status,
                service=self.service,
            )

    def __repr__(self) -> str:
        return f"<Response [{self.status}]>"


_TOO_LARGE = f"the arguments of one call may be at most {MAX_CALL_BYTES} bytes of JSON"
_REQUEST_KEYWORDS = ("params", "json", "data", "headers", "timeout", "account")


def call_host(host_call: HostCall, op: str, args: dict[str, Any]) -> Any:
    """Send one call to the host and return its value, or raise the error it answered."""
    # One plain copy, checked once: what is checked is exactly what the host receives.
    try:
        plain_args = _json.loads(plain.dumps(args, max_bytes=MAX_CALL_BYTES, allow_nan=True))
    except plain.TooLarge:
        raise InvalidRequest(_TOO_LARGE) from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidRequest(f"arguments must be JSON-serializable: {exc}") from None
    reply = host_call(op, plain_args)
    if reply.get("ok"):
        return reply.get("value")
    error = reply.get("error") or {}
    cls = ERROR_CLASSES.get(str(error.get("code")), IntegrationError)
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    raise cls(str(error.get("message") or cls.code), **details)


class Integrations:
    """The `integrations` object of a script."""

    IntegrationError = IntegrationError
    NoIntegrationGrant = NoIntegrationGrant
    UnknownIntegration = UnknownIntegration
    ForbiddenDestination = ForbiddenDestination
    IntegrationTimeout = IntegrationTimeout
    IntegrationUnavailable = IntegrationUnavailable
    RateLimited = RateLimited
    HTTPError = HTTPError
    InvalidRequest = InvalidRequest
    QuotaExceeded = QuotaExceeded

    def __init__(self, host_call: HostCall) -> None:
        self._host_call = host_call

    def _call(self, op: str, args: dict[str, Any]) -> Any:
        return call_host(self._host_call, op, args)

    def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        headers: Any = None,
        timeout: Any = None,
        account: str | None = None,
    ) -> Response:
        """Call the service's API; the host injects the credentials."""
        if type(service) is not str or type(method) is not str or type(path) is not str:
            # Exact str: a script's subclass could answer .upper() with anything.
            raise InvalidRequest("service, method and path must be strings")
        args: dict[str, Any] = {"service": service, "method": method.upper(), "path": path}
        if isinstance(data, bytes | bytearray):
            if len(data) > MAX_CALL_BYTES:  # checked before base64 makes it a third larger
                raise InvalidRequest(_TOO_LARGE)
            args["data_b64"] = base64.b64encode(bytes(data)).decode()
            data = None
        for key, value in zip(
            _REQUEST_KEYWORDS, (params, json, data, headers, timeout, account), strict=True
        ):
            if value is not None:
                args[key] = value
        return Response(self._call("request", args))

    def get(self, service: str, path: str, **kwargs: Any) -> Response:
        """GET under the service's base URL."""
        return self.request(service, "GET", path, **kwargs)

    def post(self, service: str, path: str, **kwargs: Any) -> Response:
        """POST under the service's base URL."""
        return self.request(service, "POST", path, **kwargs)

    def put(self, service: str, path: str, **kwargs: Any) -> Response:
        """PUT under the service's base URL."""
        return self.request(service, "PUT", path, **kwargs)

    def patch(self, service: str, path: str, **kwargs: Any) -> Response:
        """PATCH under the service's base URL."""
        return self.request(service, "PATCH", path, **kwargs)

    def delete(self, service: str, path: str, **kwargs: Any) -> Response:
        """DELETE under the service's base URL."""
        return self.request(service, "DELETE", path, **kwargs)

    def require(self, service: str, account: str | None = None) -> None:
        """Make sure a usable account exists now (may ask the user to sign in)."""
        args: dict[str, Any] = {"service": service}
        if account is not None:
            args["account"] = account
        self._call("require", args)

    def available(self) -> list[dict[str, Any]]:
        """The facility's integrations and the accounts this run could use."""
        value = self._call("available", {})
        return list(value) if isinstance(value, list) else []

    def __repr__(self) -> str:
        return "<integrations>"


class Info:
    """Read-only `user`/`facility` details (`user.id`, `user["name"]`)."""

    def __init__(self, data: Mapping[str, Any] | None) -> None:
        self._data = dict(data or {})

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Like dict.get."""
        return self._data.get(key, default)

    def __repr__(self) -> str:
        return repr(self._data)
