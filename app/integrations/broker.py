"""The broker: the sandbox's host call handler behind `integrations.*` (DESIGN §2, §3, §5).

For each call it finds the facility's integration, resolves the account (asking the
grant hook when a person must sign in, with the run's clock stopped), injects the
credential, sends the request only where the integration allows, and logs the call.
Scripts never see credentials: not in responses, errors, logs or the call log.
"""

from __future__ import annotations

import base64
import collections
import email.utils
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Flask
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from app.integrations import destinations
from app.integrations.catalog import MAX_KEY_LENGTH, MAX_LABEL_LENGTH, OAUTH_MODES
from app.integrations.defaults import defaults_of
from app.integrations.destinations import DestinationRefused
from app.integrations.placements import place_credentials, placements_of
from app.integrations.resolution import (
    MASTER_NEEDS_REAUTH,
    NEEDS_REAUTH,
    NO_MASTER_ACCOUNT,
    NOT_INTERACTIVE,
    refusal_message,
    resolve,
)
from app.integrations.tokens import NeedsReauth, RefreshFailed, TokenManager
from app.integrations.vault import Vault
from app.models import Account, CallLog, Facility, Integration
from app.models._types import utcnow
from sandbox import HostCall, HostCallError

log = logging.getLogger(__name__)
MAX_REDIRECTS = 5
_LOG_BATCH_WINDOW_S = 0.05
_BODY_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RunContext:
    """Who runs the script, where, and whether a person can be asked to sign in."""

    facility_id: int
    user_id: int | None
    run_id: str | None = None
    script_id: int | None = None
    interactive: bool = False


@dataclass(frozen=True)
class GrantRequest:
    """A call needs an account nobody connected: the grant hook asks the user."""

    facility_id: int
    user_id: int | None
    run_id: str | None
    integration_id: int
    integration_key: str
    integration_name: str
    label: str
    reason: str  # a prompt reason of app.integrations.resolution
    call: HostCall | None = field(default=None, compare=False)


GrantHook = Callable[[GrantRequest], int]


def not_interactive(request: GrantRequest) -> int:
    """The default grant hook: nobody can be asked (and a stale master account says so)."""
    reason = MASTER_NEEDS_REAUTH if request.reason == MASTER_NEEDS_REAUTH else NOT_INTERACTIVE
    raise HostCallError(
        "no_integration_grant",
        refusal_message(reason, request.integration_name),
        reason=reason,
        service=request.integration_key,
    )


@dataclass(frozen=True)
class BrokerSettings:
    """Limits of one integration call."""

    call_timeout_s: float = 30.0
    max_response_bytes: int = 10 * 1024 * 1024
    refresh_margin_s: int = 1800


class _Log:
    """What the call log records about one call (filled in as the call proceeds)."""

    def __init__(self, ctx: RunContext, service: str, method: str, started: float) -> None:
        self.ctx = ctx
        self.service = service
        self.method = method
        self.integration_id: int | None = None
        self.account_id: int | None = None
        self.account_kind: str | None = None
        self.path = ""
        self.status: int | None = None
        self.error: str | None = None
        self.started = started
        # Time spent waiting for a person to sign in: logged apart from the call's own time.
        self.waited: float | None = None


class CallLogWriter:
    """Writes call-log rows from a background thread, off the call's critical path.

    Rows are gathered for a short window and inserted together: one INSERT for many
    calls keeps the writer from competing with the calls themselves for the interpreter.
    `flush()` cuts the window short and waits until every row handed in is committed
    (the run manager flushes before it reports a run finished, so its calls are listed).
    """

    def __init__(self, session_factory: Callable[[], Session]) -> None:
        self._session_factory = session_factory
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._flushing = threading.Event()
        self._pending: collections.Counter[int] = collections.Counter()

    def write(self, row: dict[str, Any]) -> None:
        """Queue one call-log row."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, name="call-log", daemon=True)
                self._thread.start()
            self._pending[row["facility_id"]] += 1
        self._queue.put(row)

    def pending(self, facility_id: int) -> int:
        """Rows of this facility not yet in the database (for quota counts)."""
        with self._lock:
            return self._pending[facility_id]

    def flush(self) -> None:
        """Block until every queued row is written."""
        if self._thread is not None:
            self._flushing.set()
            self._queue.join()

    def _drain(self) -> None:
        while True:
            rows = [self._queue.get()]
            self._flushing.wait(_LOG_BATCH_WINDOW_S)
            while not self._queue.empty() and len(rows) < 500:
                rows.append(self._queue.get_nowait())
            try:
                used: dict[int, Any] = {}
                for row in rows:
                    account_id = row.pop("account_id", None)
                    if account_id is not None:
                        used[account_id] = row["created_at"]
                with self._session_factory() as session, session.begin():
                    session.execute(insert(CallLog), rows)
                    for account_id, when in used.items():
                        session.execute(
                            update(Account)
                            .where(Account.id == account_id)
                            .values(last_used_at=when)
                        )
            except Exception:  # the calls' outcomes matter more than their log rows
                log.exception("could not write %d call-log rows", len(rows))
            finally:
                with self._lock:
                    for row in rows:
                        self._pending[row["facility_id"]] -= 1
                    if self._queue.empty():
                        self._flushing.clear()
                for _ in rows:
                    self._queue.task_done()


@dataclass
class _Cached:
    """What one run learned about (service, account): reused by its later calls."""

    integration: Integration
    account: Account | None
    creds: dict[str, str] | None  # kept only for non-OAuth accounts (they do not expire)


class Broker:
    """Handles `integrations.*` calls from sandboxed scripts."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        vault: Vault,
        tokens: TokenManager,
        settings: BrokerSettings | None = None,
        http: requests.Session | None = None,
        private_http: requests.Session | None = None,
        grant_hook: GrantHook = not_interactive,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._session_factory = session_factory
        self._clock = clock
        self._vault = vault
        self._tokens = tokens
        self._settings = settings or BrokerSettings()
        self._http = http or destinations.checked_session(allow_private=False)
        self._private_http = private_http or destinations.checked_session(allow_private=True)
        self._grant_hook = grant_hook
        self._log_writer = CallLogWriter(session_factory)

    def flush(self) -> None:
        """Wait until every call so far is in the call log."""
        self._log_writer.flush()

    @classmethod
    def from_app(
        cls,
        app: Flask,
        *,
        grant_hook: GrantHook = not_interactive,
        clock: Callable[[], float] = time.perf_counter,
    ) -> Broker:
        """A broker wired to the app's database, vault and settings."""
        from app import db, extensions

        factory = db.session_factory(app)
        vault = extensions.vault(app)
        margin = int(app.config["REFRESH_MARGIN_S"])
        return cls(
            session_factory=factory,
            vault=vault,
            tokens=TokenManager(session_factory=factory, vault=vault, margin_s=margin),
            settings=BrokerSettings(
                call_timeout_s=float(app.config["CALL_TIMEOUT_S"]),
                max_response_bytes=int(app.config["CALL_MAX_RESPONSE_BYTES"]),
                refresh_margin_s=margin,
            ),
            grant_hook=grant_hook,
            clock=clock,
        )

    def handler(self, ctx: RunContext) -> Callable[[HostCall], Any]:
        """The `on_call` for one run."""

        cache: dict[Any, Any] = {}

        def on_call(call: HostCall) -> Any:
            if call.op == "request":
                return self._request(ctx, call, cache)
            if call.op == "require":
                self._require(ctx, call)
                return None
            if call.op == "available":
                return self._available(ctx)
            raise HostCallError("invalid_request", f"unknown integrations operation {call.op!r}")

        return on_call

    # -- lookups ---------------------------------------------------------------------------

    def _integration(self, session: Session, ctx: RunContext, service: Any) -> Integration:
        if not isinstance(service, str) or not service.isalnum():
            raise HostCallError("unknown_integration", "the service must be an integration key")
        integration = session.scalar(
            select(Integration).where(
                Integration.facility_id == ctx.facility_id, Integration.key == service.lower()
            )
        )
        if integration is None:
            raise HostCallError(
                "unknown_integration",
                f"this facility has no integration named '{service}'",
                service=service,
            )
        session.expunge(integration)
        return integration

    def _account(
        self,
        ctx: RunContext,
        call: HostCall,
        integration: Integration,
        account: Any,
        reason_override: str | None = None,
        entry: _Log | None = None,
    ) -> Account | None:
        if integration.auth_mode == "none":
            return None
        if account is not None and (
            not isinstance(account, str) or len(account) > MAX_LABEL_LENGTH
        ):
            raise HostCallError(
                "invalid_request",
                "account must be None, 'master', 'user' or a label of up to "
                f"{MAX_LABEL_LENGTH} characters",
            )
        with self._session_factory() as session:
            found = resolve(session, integration, ctx.user_id, account)
            if found.account is not None and reason_override is None:
                session.expunge(found.account)
                return found.account
        if found.refuse_reason in (NO_MASTER_ACCOUNT, MASTER_NEEDS_REAUTH):
            raise HostCallError(
                "no_integration_grant",
                refusal_message(found.refuse_reason, integration.name),
                reason=found.refuse_reason,
                service=integration.key,
            )
        label = (
            found.prompt_label
            if found.prompt_label is not None
            else ("" if account in (None, "user") else str(account))
        )
        request = GrantRequest(
            facility_id=ctx.facility_id,
            user_id=ctx.user_id,
            run_id=ctx.run_id,
            integration_id=integration.id,
            integration_key=integration.key,
            integration_name=integration.name,
            label=label,
            reason=reason_override or found.reason,
            call=call,
        )
        if found.refuse_reason == NOT_INTERACTIVE or ctx.user_id is None:
            not_interactive(request)
        asked = self._clock()
        try:
            with call.clock.paused():  # a person is being asked: the run's clock stops
                account_id = self._grant_hook(request)
        finally:
            if entry is not None:
                entry.waited = (entry.waited or 0.0) + self._clock() - asked
        with self._session_factory() as session:
            granted = session.get(Account, account_id)
            if granted is None or granted.integration_id != integration.id:
                raise HostCallError(
                    "no_integration_grant",
                    "the connected account is gone",
                    reason="missing",
                    service=integration.key,
                )
            session.expunge(granted)
            return granted

    def _credentials(
        self,
        ctx: RunContext,
        call: HostCall,
        integration: Integration,
        account_arg: Any,
        entry: _Log | None = None,
    ) -> tuple[Account | None, dict[str, str]]:
        account = self._account(ctx, call, integration, account_arg, entry=entry)
        if account is None:
            return None, {}
        try:
            return account, self._tokens.credentials(account.id)
        except NeedsReauth:
            account = self._account(ctx, call, integration, account_arg, NEEDS_REAUTH, entry)
            assert account is not None
            return account, self._tokens.credentials(account.id)
        except RefreshFailed as exc:
            raise HostCallError(
                "integration_unavailable", str(exc), service=integration.key
            ) from None

    # -- operations ----------------------------------------------------------------------------

    def _check_quota(
        self, ctx: RunContext, integration: Integration, cache: dict[Any, Any]
    ) -> None:
        """Refuse calls past the facility's monthly quota (looked up once per run)."""
        if "quota" not in cache:
            with self._session_factory() as session:
                facility = session.get(Facility, ctx.facility_id)
                cache["quota"] = facility.monthly_call_quota if facility else None
        quota = cache["quota"]
        if quota is None:
            return
        from app.services.usage import calls_this_month

        with self._session_factory() as session:
            made = calls_this_month(session, ctx.facility_id)
            if made + self._log_writer.pending(ctx.facility_id) >= quota:
                raise HostCallError(
                    "quota_exceeded",
                    f"this facility's monthly quota of {quota} integration calls is used up; "
                    "an admin can raise it on the Management page",
                    service=integration.key,
                )

    def _require(self, ctx: RunContext, call: HostCall) -> None:
        with self._session_factory() as session:
            integration = self._integration(session, ctx, call.args.get("service"))
        self._credentials(ctx, call, integration, call.args.get("account"))

    def _available(self, ctx: RunContext) -> list[dict[str, Any]]:
        with self._session_factory() as session:
            integrations = session.scalars(
                select(Integration)
                .where(Integration.facility_id == ctx.facility_id)
                .order_by(Integration.key)
            ).all()
            accounts = session.scalars(
                select(Account).where(
                    Account.facility_id == ctx.facility_id, Account.status == "active"
                )
            ).all()
            return [
                {
                    "key": i.key,
                    "name": i.name,
                    "master": any(
                        a.integration_id == i.id and a.owner_kind == "master" for a in accounts
                    ),
                    "user_accounts": sorted(
                        a.label
                        for a in accounts
                        if a.integration_id == i.id
                        and a.owner_kind == "user"
                        and a.user_id == ctx.user_id
                    ),
                }
                for i in integrations
            ]

    def _request(self, ctx: RunContext, call: HostCall, cache: dict[Any, Any]) -> dict[str, Any]:
        args = call.args
        method = str(args.get("method", "")).upper()
        entry = _Log(ctx, str(args.get("service", ""))[:MAX_KEY_LENGTH], method[:10], self._clock())
        try:
            return self._perform(ctx, call, entry, cache)
        except HostCallError as exc:
            entry.error = exc.code
            raise
        except DestinationRefused as exc:
            entry.error = DestinationRefused.code
            raise HostCallError(DestinationRefused.code, str(exc), service=entry.service) from None
        finally:
            self._write_log(entry)

    def _perform(
        self,
        ctx: RunContext,
        call: HostCall,
        entry: _Log,
        cache: dict[Any, Any],
    ) -> dict[str, Any]:
        args = call.args
        if entry.method not in destinations.ALLOWED_METHODS:
            raise HostCallError(
                "invalid_request",
                f"method must be one of {', '.join(sorted(destinations.ALLOWED_METHODS))}",
            )
        path = args.get("path")
        if not isinstance(path, str):
            raise HostCallError("invalid_request", "path must be a string")
        account_arg = args.get("account")
        cache_key = (
            str(args.get("service")),
            account_arg if isinstance(account_arg, str) else None,
        )
        cached = cache.get(cache_key)
        if cached is not None:
            integration = cached.integration
        else:
            with self._session_factory() as session:
                integration = self._integration(session, ctx, args.get("service"))
        self._check_quota(ctx, integration, cache)
        entry.integration_id = integration.id
        entry.service = integration.key
        if cached is not None and (cached.account is None or cached.creds is not None):
            account, creds = cached.account, dict(cached.creds or {})
        elif cached is not None and cached.account is not None:
            account = cached.account
            try:
                creds = self._tokens.credentials(account.id)
            except NeedsReauth:
                cache.pop(cache_key, None)
                account, creds = self._credentials(ctx, call, integration, account_arg, entry)
            except RefreshFailed as exc:
                raise HostCallError(
                    "integration_unavailable", str(exc), service=integration.key
                ) from None
        else:
            account, creds = self._credentials(ctx, call, integration, account_arg, entry)
        oauth = integration.auth_mode in OAUTH_MODES
        cache[cache_key] = _Cached(integration, account, None if oauth else dict(creds))
        if account is not None:
            entry.account_id, entry.account_kind = account.id, account.kind
        parameters = dict(account.parameters) if account else {}
        url = destinations.build_url(
            integration.base_url,
            path,
            parameters=parameters,
            allowed_hosts=integration.allowed_hosts or [],
        )
        entry.path = destinations.query_names_only(url)[:1000]
        headers, params = self._outgoing(integration, args, creds, parameters)
        separator = "&" if "?" in url else "?"
        logged = url + (separator + destinations.encode_query(params) if params else "")
        entry.path = destinations.query_names_only(logged)[:1000]
        body = _body(args)
        timeout = self._timeout(args, call)
        response = self._send(integration, entry.method, url, headers, params, body, timeout)
        if (
            (
                response.status_code == 401
                or (response.status_code == 403 and integration.refresh_on_403)
            )
            and account is not None
            and integration.auth_mode in OAUTH_MODES
        ):
            response.close()
            try:
                creds = self._tokens.refresh_after_rejection(
                    account.id, creds.get("access_token", "")
                )
            except NeedsReauth:
                cache.pop(cache_key, None)
                account, creds = self._credentials(
                    ctx, call, integration, args.get("account"), entry
                )
            except RefreshFailed as exc:
                raise HostCallError(
                    "integration_unavailable", str(exc), service=integration.key
                ) from None
            headers, params = self._outgoing(integration, args, creds, parameters)
            response = self._send(
                integration, entry.method, url, headers, params, body, self._timeout(args, call)
            )
        if response.status_code == 429:
            wait = _retry_after(response.headers.get("Retry-After"))
            remaining = call.clock.remaining()
            response.close()
            if wait is None or wait > max(remaining - 1.0, 0):
                raise HostCallError(
                    "rate_limited",
                    f"{integration.name} is rate limiting; it asked to wait "
                    f"{'an unknown time' if wait is None else f'{wait:g} s'}",
                    retry_after=wait,
                    service=integration.key,
                )
            time.sleep(wait)
            response = self._send(
                integration, entry.method, url, headers, params, body, self._timeout(args, call)
            )
        content = self._read(response, integration)
        entry.status = response.status_code
        return {
            "status": response.status_code,
            "headers": _response_headers(response),
            "body_b64": base64.b64encode(content).decode(),
            "url": response.url,
            "service": integration.key,
        }

    # -- building and sending ------------------------------------------------------------------

    def _outgoing(
        self,
        integration: Integration,
        args: Mapping[str, Any],
        creds: Mapping[str, str],
        parameters: Mapping[str, str],
    ) -> tuple[dict[str, str], list[tuple[str, str]]]:
        placements = placements_of(integration)
        guarded_headers = set(destinations.ALWAYS_CREDENTIAL_HEADERS)
        guarded_query = set()
        for placement in placements:
            if placement.get("location") == "header" and placement.get("name"):
                guarded_headers.add(str(placement["name"]).lower())
            elif placement.get("location") == "query" and placement.get("name"):
                guarded_query.add(str(placement["name"]))
        headers: dict[str, str] = {}
        raw_headers = args.get("headers") or {}
        if not isinstance(raw_headers, Mapping):
            raise HostCallError("invalid_request", "headers must be a dict of strings")
        default_headers, default_query = defaults_of(integration, self._vault)
        for name, value in {**default_headers, **raw_headers}.items():
            name_s, value_s = str(name), str(value)
            destinations.check_text(name_s, "a header name")
            destinations.check_text(value_s, "a header value")
            lowered = name_s.lower()
            if lowered in guarded_headers and name in raw_headers:
                raise DestinationRefused(
                    f"scripts may not set the {name_s} header: the server "
                    "adds the credential itself"
                )
            if lowered in destinations.HOP_BY_HOP:
                continue
            headers[name_s] = value_s
        params = destinations.clean_params(args.get("params"))
        for name, _value in params:
            if name in guarded_query:
                raise DestinationRefused(
                    f"scripts may not set the {name} query parameter: the "
                    "server adds the credential itself"
                )
        params.extend((str(k), str(v)) for k, v in default_query.items())
        placed_headers, placed_params = place_credentials(placements, creds, parameters)
        headers.update(placed_headers)
        params.extend(placed_params)
        return headers, params

    def _timeout(self, args: Mapping[str, Any], call: HostCall) -> float:
        wanted = args.get("timeout")
        timeout = self._settings.call_timeout_s
        if isinstance(wanted, int | float) and not isinstance(wanted, bool) and wanted > 0:
            timeout = min(timeout, float(wanted))
        remaining = call.clock.remaining()
        if remaining <= 0:
            raise HostCallError("integration_timeout", "the run has no time left for this call")
        return max(0.05, min(timeout, remaining))

    def _send(
        self,
        integration: Integration,
        method: str,
        url: str,
        headers: dict[str, str],
        params: list[tuple[str, str]],
        body: dict[str, Any],
        timeout: float,
    ) -> requests.Response:
        http = self._private_http if integration.allow_private_network else self._http
        base_host = urlsplit(integration.base_url).hostname or ""
        try:
            response = http.request(
                method,
                url,
                headers=headers,
                params=params or None,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
                **body,
            )
            for _ in range(MAX_REDIRECTS):
                if not response.is_redirect:
                    return response
                location = response.headers.get("Location", "")
                response.close()
                next_url = destinations.check_redirect(
                    location, response.url, base_host, integration.allowed_hosts or []
                )
                if response.status_code in (301, 302, 303) and method != "HEAD":
                    method, body = "GET", {}
                response = http.request(
                    method,
                    next_url,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                    stream=True,
                    **body,
                )
            response.close()
            raise HostCallError(
                "integration_unavailable",
                f"{integration.name} redirected more than {MAX_REDIRECTS} times",
            )
        except requests.Timeout:
            raise HostCallError(
                "integration_timeout",
                f"{integration.name} did not answer within {timeout:g} s",
                service=integration.key,
            ) from None
        except requests.RequestException as exc:
            if "private or local address" in str(exc) or "metadata host" in str(exc):
                raise DestinationRefused(
                    f"{integration.name}'s address is private or local; an admin can allow "
                    "private networks for this integration"
                ) from None
            raise HostCallError(
                "integration_unavailable",
                f"{integration.name} could not be reached ({type(exc).__name__})",
                service=integration.key,
            ) from None

    def _read(self, response: requests.Response, integration: Integration) -> bytes:
        cap = self._settings.max_response_bytes
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(_BODY_CHUNK):
                size += len(chunk)
                if size > cap:
                    raise HostCallError(
                        "integration_unavailable",
                        f"{integration.name}'s answer is larger than {cap} bytes",
                        service=integration.key,
                    )
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise HostCallError(
                "integration_unavailable",
                f"{integration.name}'s answer broke off ({type(exc).__name__})",
                service=integration.key,
            ) from None
        finally:
            response.close()
        return b"".join(chunks)

    def _write_log(self, entry: _Log) -> None:
        elapsed = self._clock() - entry.started
        self._log_writer.write(
            {
                "run_id": entry.ctx.run_id,
                "script_id": entry.ctx.script_id,
                "user_id": entry.ctx.user_id,
                "facility_id": entry.ctx.facility_id,
                "integration_id": entry.integration_id,
                "integration_key": entry.service or "?",
                "account_kind": entry.account_kind,
                "account_id": entry.account_id,
                "method": entry.method or "?",
                "path": entry.path,
                "status": entry.status,
                "duration_ms": round((elapsed - (entry.waited or 0.0)) * 1000, 3),
                "wait_ms": None if entry.waited is None else round(entry.waited * 1000, 3),
                "error_code": entry.error,
                "created_at": utcnow(),
            }
        )


def _body(args: Mapping[str, Any]) -> dict[str, Any]:
    if args.get("json") is not None:
        return {"json": args["json"]}
    if args.get("data_b64") is not None:
        try:
            return {"data": base64.b64decode(str(args["data_b64"]), validate=True)}
        except ValueError:
            raise HostCallError("invalid_request", "data is not valid") from None
    data = args.get("data")
    if data is None:
        return {}
    if isinstance(data, str):
        return {"data": data.encode()}
    if isinstance(data, Mapping):
        return {"data": {str(k): str(v) for k, v in data.items()}}
    raise HostCallError("invalid_request", "data must be text, bytes or a dict")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _response_headers(response: requests.Response) -> dict[str, str]:
    return {
        name: value
        for name, value in response.headers.items()
        if name.lower() not in destinations.HOP_BY_HOP
        and name.lower() not in ("set-cookie", "set-cookie2")
    }
