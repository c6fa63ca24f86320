"""Which account an integration call is made with, and that account's credential
(DESIGN §3, §5).

The account is the one the script named, else the person's own, else the facility's
master; when a person must sign in first, the grant hook asks them, with the run's clock
stopped. A token past its time is refreshed here; one that cannot be refreshed asks for a
new sign-in the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from app.integrations.call_context import GrantHook, GrantRequest, RunContext, not_interactive
from app.integrations.catalog_entry import MAX_LABEL_LENGTH
from app.integrations.resolution import (
    MASTER_NEEDS_REAUTH,
    NEEDS_REAUTH,
    NO_MASTER_ACCOUNT,
    NOT_INTERACTIVE,
    refusal_message,
    resolve,
)
from app.integrations.tokens import NeedsReauth, RefreshFailed, TokenManager
from app.models import Account, Integration
from sandbox import HostCall, HostCallError

# Told how long a person was asked (seconds): logged apart from the call's own time.
Waited = Callable[[float], None]


def _no_log(_seconds: float) -> None:
    pass


def _unavailable(integration: Integration, failed: RefreshFailed) -> HostCallError:
    return HostCallError("integration_unavailable", str(failed), service=integration.key)


def switched_off(integration: Integration) -> HostCallError:
    """What a call of an integration an admin switched off raises."""
    return HostCallError(
        "integration_unavailable",
        f"{integration.name} is switched off by an admin of this facility",
        reason="switched_off",
        service=integration.key,
    )


class CallAccounts:
    """Finds a call's account and credential for the broker."""

    def __init__(
        self,
        *,
        reads: Callable[[], Session],
        tokens: TokenManager,
        grant_hook: GrantHook = not_interactive,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._reads = reads
        self._tokens = tokens
        self._grant_hook = grant_hook
        self._clock = clock

    def credentials(
        self,
        ctx: RunContext,
        call: HostCall,
        integration: Integration,
        wanted: Any,
        waited: Waited = _no_log,
    ) -> tuple[Account | None, dict[str, str]]:
        """The account for `wanted` (None, "master", "user" or a label) and its
        credential; a person is asked to sign in (again) where one is missing."""
        account = self.account(ctx, call, integration, wanted, waited=waited)
        if account is None:
            return None, {}
        try:
            return account, self.current(integration, account)
        except NeedsReauth:
            account = self.account(ctx, call, integration, wanted, NEEDS_REAUTH, waited)
            assert account is not None
            return account, self.current(integration, account)

    def current(self, integration: Integration, account: Account) -> dict[str, str]:
        """`account`'s credential, refreshed if it is about to expire (NeedsReauth when
        only a new sign-in can renew it)."""
        try:
            return self._tokens.credentials(account.id)
        except RefreshFailed as exc:
            raise _unavailable(integration, exc) from None

    def after_rejection(
        self, integration: Integration, account: Account, rejected: str
    ) -> dict[str, str]:
        """A new credential after the upstream refused the token `rejected` (NeedsReauth
        when only a new sign-in can renew it)."""
        try:
            return self._tokens.refresh_after_rejection(account.id, rejected)
        except RefreshFailed as exc:
            raise _unavailable(integration, exc) from None

    def _enabled(self, integration: Integration) -> bool:
        with self._reads() as session:
            now = session.get(Integration, integration.id)
            return now is not None and now.enabled

    def account(
        self,
        ctx: RunContext,
        call: HostCall,
        integration: Integration,
        wanted: Any,
        reason_override: str | None = None,
        waited: Waited = _no_log,
    ) -> Account | None:
        """The account a call of `integration` uses (None for one without auth), asking
        the run's person through the grant hook when they must sign in; with
        `reason_override` the one found is not good enough and they are asked anyway."""
        if integration.auth_mode == "none":
            return None
        if wanted is not None and (not isinstance(wanted, str) or len(wanted) > MAX_LABEL_LENGTH):
            raise HostCallError(
                "invalid_request",
                "account must be None, 'master', 'user' or a label of up to "
                f"{MAX_LABEL_LENGTH} characters",
            )
        with self._reads() as session:
            found = resolve(session, integration, ctx.user_id, wanted)
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
            else ("" if wanted in (None, "user") else str(wanted))
        )
        request = GrantRequest(
            facility_id=ctx.facility_id,
            user_id=ctx.user_id,
            run_id=ctx.run_id,
            integration_id=integration.id,
            integration_key=integration.key,
            integration_name=integration.name,
            label=label,
            # Once the one found is marked, the resolution knows whose it was (a default
            # call's master: master_needs_reauth, not "sign in again" to an own account).
            reason=reason_override if found.account is not None and reason_override
            else found.reason,
            takes_master=wanted is None,
            trigger=ctx.trigger,
            interactive=ctx.interactive,
            call=call,
        )
        if found.refuse_reason == NOT_INTERACTIVE or ctx.user_id is None:
            not_interactive(request)
        asked = self._clock()
        try:
            with call.clock.paused():  # a person is being asked: the run's clock stops
                account_id = self._grant_hook(request)
        except HostCallError as ended:
            # Switching the integration off cancels its prompts: say that, not "cancelled".
            if ended.code == "no_integration_grant" and not self._enabled(integration):
                raise switched_off(integration) from None
            raise
        finally:
            waited(self._clock() - asked)
        with self._reads() as session:
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
