"""The broker: the sandbox's host call handler behind `integrations.*` (DESIGN §2, §3, §5).

For each call it finds the facility's integration, resolves the account (asking the
grant hook when a person must sign in, with the run's clock stopped), injects the
credential, sends the request only where the integration allows, and logs the call.
Scripts never see credentials: not in responses, errors, logs or the call log.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.integrations import deadlines, destinations, transport, upstream
from app.integrations.availability import available
from app.integrations.call_accounts import CallAccounts, switched_off
from app.integrations.call_context import GrantHook, RunContext, not_interactive
from app.integrations.call_deadline import call_deadline
from app.integrations.call_log import CallLogEntry, CallLogWriter
from app.integrations.call_urls import asked_for, logged_path, logged_url
from app.integrations.catalog_entry import MAX_KEY_LENGTH, OAUTH_MODES
from app.integrations.destinations import DestinationRefused
from app.integrations.outgoing import body_of, outgoing
from app.integrations.quota import REQUIRE, CallCounter, LocalCallCounter, counts_as_usage
from app.integrations.redaction import Redactor
from app.integrations.tokens import NeedsReauth, TokenManager
from app.integrations.vault import Vault
from app.models import Account, Facility, Integration
from sandbox import HostCall, HostCallError, ParkRun

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerSettings:
    """Limits of one integration call."""

    call_timeout_s: float = 30.0
    max_response_bytes: int = 10 * 1024 * 1024
    refresh_margin_s: int = 1800


@dataclass
class _Cached:
    """What one run learned about (service, account): reused by its later calls."""

    integration: Integration
    account: Account | None
    creds: dict[str, str] | None  # kept only for non-OAuth accounts (they do not expire)


# A call's integration and its facility's quota: one query, built once.
_INTEGRATION_AND_QUOTA = (
    select(Integration, Facility.monthly_call_quota)
    .join(Facility, Facility.id == Integration.facility_id)
    .where(Integration.facility_id == bindparam("facility"), Integration.key == bindparam("key"))
)


class Broker:
    """Handles `integrations.*` calls from sandboxed scripts."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        vault: Vault,
        tokens: TokenManager,
        read_session_factory: Callable[[], Session] | None = None,
        settings: BrokerSettings | None = None,
        http: requests.Session | None = None,
        grant_hook: GrantHook = not_interactive,
        clock: Callable[[], float] = time.perf_counter,
        calls: Callable[[CallCounter], CallCounter] | None = None,
    ) -> None:
        # Its lookups (integration, accounts, quota counts) write nothing: autocommit
        # sessions if given.
        self._reads = read_session_factory or session_factory
        self._clock = clock
        self._vault = vault
        self._accounts = CallAccounts(
            reads=self._reads, tokens=tokens, grant_hook=grant_hook, clock=clock
        )
        self._settings = settings or BrokerSettings()
        self._http = http or transport.guarded_session()
        self._log_writer = CallLogWriter(session_factory)
        # How calls count against the monthly quota: in this process, or shared (Redis).
        local = LocalCallCounter(self._reads, self._log_writer.pending)
        self._calls = calls(local) if calls is not None else local

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every call so far is in the call log, or `timeout` seconds passed;
        whether they are."""
        return self._log_writer.flush(timeout)

    def close(self, timeout: float) -> None:
        """Write the call log's queued rows and end its thread (the server is stopping)."""
        self._log_writer.close(timeout)

    def handler(self, ctx: RunContext) -> Callable[[HostCall], Any]:
        """The `on_call` for one run."""

        cache: dict[Any, Any] = {}
        waited_before = [ctx.waited_before_s]  # for the first live call only

        def on_call(call: HostCall) -> Any:
            earlier, waited_before[0] = waited_before[0], None
            if call.op == "request":
                return self._request(ctx, call, cache, earlier)
            if call.op == "require":
                self._require(ctx, call, earlier)
                return None
            if call.op == "available":
                return self._available(ctx)
            raise HostCallError("invalid_request", f"unknown integrations operation {call.op!r}")

        return on_call

    # -- lookups ---------------------------------------------------------------------------

    def _integration(
        self, session: Session, ctx: RunContext, service: Any
    ) -> tuple[Integration, int | None]:
        """The facility's integration `service`, and the facility's monthly call quota
        (None: no quota), read in the same query. One switched off is returned too: the
        caller refuses it (switched_off) once it knows what to log of the call."""
        if not isinstance(service, str) or not service.isalnum():
            raise HostCallError("unknown_integration", "the service must be an integration key")
        params = {"facility": ctx.facility_id, "key": service}
        row = session.execute(_INTEGRATION_AND_QUOTA, params).first()
        if row is None:
            raise HostCallError(
                "unknown_integration",
                f"this facility has no integration named '{service}'",
                service=service,
            )
        integration, quota = row
        session.expunge(integration)
        return integration, quota

    # -- operations ----------------------------------------------------------------------------

    def _check_quota(
        self, ctx: RunContext, integration: Integration, cache: dict[Any, Any], entry: CallLogEntry
    ) -> None:
        """Refuse calls past the facility's monthly quota (read with the run's first
        integration, once per run; the count is the call log plus the calls in flight, see
        CallCounter)."""
        quota = cache["quota"]
        if quota is None:
            return
        entry.admission = self._calls.admit(ctx.facility_id, quota)
        if not entry.admission.allowed:
            raise HostCallError(
                "quota_exceeded",
                f"this facility's monthly quota of {quota} integration calls is used up; "
                "an admin can raise it under Management → Usage and quota",
                service=integration.key,
            )

    def _require(self, ctx: RunContext, call: HostCall, waited_before: float | None) -> None:
        service = str(call.args.get("service", ""))[:MAX_KEY_LENGTH]
        entry = CallLogEntry(ctx, service, REQUIRE, self._clock())
        if waited_before is not None:
            entry.add_wait_before(waited_before)
        try:
            with self._reads() as session:
                integration, _quota = self._integration(session, ctx, call.args.get("service"))
            if not integration.enabled:
                raise switched_off(integration)
            entry.integration_id, entry.service = integration.id, integration.key
            account, _creds = self._accounts.credentials(
                ctx, call, integration, call.args.get("account"), entry.add_wait
            )
            if account is not None:  # its kind only: nothing was sent with it (last_used_at)
                entry.account_kind = account.kind
        except HostCallError as exc:
            entry.error = exc.code
            raise
        except ParkRun:
            entry.parked = True  # asked again (and logged) when the run resumes
            raise
        finally:
            # Logged when it asked a person to sign in or was refused, so the call log
            # shows where a run waited; one that found its account at once did nothing
            # to log. Never usage (counts_as_usage): it sent nothing.
            if not entry.parked and (entry.error is not None or entry.waited is not None):
                self._log_writer.write(entry.row(self._clock()))

    def _available(self, ctx: RunContext) -> list[dict[str, Any]]:
        with self._reads() as session:
            return available(session, facility_id=ctx.facility_id, user_id=ctx.user_id)

    def _request(
        self, ctx: RunContext, call: HostCall, cache: dict[Any, Any], waited_before: float | None
    ) -> dict[str, Any]:
        args = call.args
        method = str(args.get("method", "")).upper()
        service = str(args.get("service", ""))[:MAX_KEY_LENGTH]
        entry = CallLogEntry(ctx, service, method[:10], self._clock())
        if waited_before is not None:
            entry.add_wait_before(waited_before)
        try:
            return self._perform(ctx, call, entry, cache)
        except HostCallError as exc:
            entry.error = exc.code
            raise
        except DestinationRefused as exc:
            entry.error = DestinationRefused.code
            if exc.url:  # logged with the full origin it tried to reach
                entry.path = logged_path(exc.url)
            raise HostCallError(DestinationRefused.code, str(exc), service=entry.service) from None
        except ParkRun:
            entry.parked = True  # not made: it is asked again (and logged) when the run resumes
            raise
        finally:
            # Logged unless parked; counted only if it went out (counts_as_usage).
            counted = False
            if not entry.parked:
                row = entry.row(self._clock())
                counted = counts_as_usage(row)
                self._log_writer.write(row)
            if entry.admission is not None:
                entry.admission.settle(counted=counted)
            elif counted:
                self._calls.unchecked(ctx.facility_id)

    def _perform(
        self,
        ctx: RunContext,
        call: HostCall,
        entry: CallLogEntry,
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
        entry.path = logged_path(path)  # until the integration is known
        account_arg = args.get("account")
        cache_key = (
            str(args.get("service")),
            account_arg if isinstance(account_arg, str) else None,
        )
        cached = cache.get(cache_key)
        if cached is not None:
            integration = cached.integration
        else:
            with self._reads() as session:
                integration, quota = self._integration(session, ctx, args.get("service"))
            cache.setdefault("quota", quota)
        entry.path = asked_for(integration, path, args.get("params"))
        if not integration.enabled:
            # After the URL it asked for: its row reads as any refused call's, not "/echo".
            raise switched_off(integration)
        self._check_quota(ctx, integration, cache, entry)
        entry.integration_id = integration.id
        entry.service = integration.key
        if cached is not None and (cached.account is None or cached.creds is not None):
            account, creds = cached.account, dict(cached.creds or {})
        elif cached is not None and cached.account is not None:
            account = cached.account
            try:
                creds = self._accounts.current(integration, account)
            except NeedsReauth:
                cache.pop(cache_key, None)
                account, creds = self._accounts.credentials(
                    ctx, call, integration, account_arg, entry.add_wait
                )
        else:
            account, creds = self._accounts.credentials(
                ctx, call, integration, account_arg, entry.add_wait
            )
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
        entry.path = logged_path(url)
        request = outgoing(integration, args, creds, parameters, vault=self._vault, url=url)
        headers, params = request.headers, request.params
        entry.path = logged_url(url, params)
        body = body_of(args)
        deadline = self._deadline(call)
        origins = destinations.allowed_origins(
            destinations.fill_parameters(integration.base_url, parameters),
            integration.allowed_hosts or [],
        )

        def send(limit: deadlines.Deadline) -> requests.Response:
            # `headers` and `params` as they are when it is called (a refresh renews them).
            return upstream.send(
                self._http, integration, entry.method, url, headers, params, body, limit, origins
            )

        response = send(deadline)
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
                creds = self._accounts.after_rejection(
                    integration, account, creds.get("access_token", "")
                )
            except NeedsReauth:
                cache.pop(cache_key, None)
                account, creds = self._accounts.credentials(
                    ctx, call, integration, account_arg, entry.add_wait
                )
            request = outgoing(integration, args, creds, parameters, vault=self._vault, url=url)
            headers, params = request.headers, request.params
            deadline = self._deadline(call)
            response = send(deadline)
        if response.status_code == 429:
            wait = upstream.retry_after(response.headers.get("Retry-After"))
            remaining = call.clock.remaining()
            response.close()
            if wait is None or wait > max(remaining - 1.0, 0):
                entry.status = 429  # the service answered: logged, and counted, as such
                raise HostCallError(
                    "rate_limited",
                    f"{integration.name} is rate limiting; it asked to wait "
                    f"{'an unknown time' if wait is None else f'{wait:g} s'}",
                    retry_after=wait,
                    service=integration.key,
                )
            time.sleep(wait)
            deadline = self._deadline(call)
            response = send(deadline)
        content = upstream.read(
            response, integration, cap=self._settings.max_response_bytes, deadline=deadline
        )
        entry.status = response.status_code
        # Upstreams that echo requests hand the credential back: the script sees none.
        redactor = Redactor(request.secrets, credential_query=request.credential_query)
        return {
            "status": response.status_code,
            "headers": redactor.headers(upstream.response_headers(response)),
            "body_b64": base64.b64encode(redactor.content(content)).decode(),
            "url": redactor.url(response.url),
            "service": integration.key,
        }

    def _deadline(self, call: HostCall) -> deadlines.Deadline:
        """The limit of one exchange of `call` (call_deadline), by this broker's settings."""
        return call_deadline(call, call_timeout_s=self._settings.call_timeout_s)
