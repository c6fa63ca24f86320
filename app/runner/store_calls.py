"""The host side of a script's `store`: serves a run's store calls beside the broker.

Composed with the broker's handler where a run's `on_call` is built (app.runner.driver):
store calls come here, every other call goes on to the broker. Each call is one short
transaction, committed before the script gets its reply: what a run stored stays stored
even if the run fails later. A resumed run's replayed calls never reach this handler
(the sandbox answers them from the journal), so a replayed `set` writes nothing again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.integrations.call_context import RunContext
from app.services import script_store
from sandbox import (
    NO_STORE,
    STORE_DELETE,
    STORE_GET,
    STORE_KEYS,
    STORE_OPS,
    STORE_SET,
    HostCall,
    HostCallError,
)

CallHandler = Callable[[HostCall], Any]


class StoreCalls:
    """Serves `store.get/set/delete/keys` for the run's script (its id from the run's row,
    never from the script: no key reaches another script's store)."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        read_session_factory: Callable[[], Session] | None = None,
    ) -> None:
        self._writes = session_factory
        self._reads = read_session_factory or session_factory

    def handler(self, ctx: RunContext, then: CallHandler) -> CallHandler:
        """The run's `on_call`: its store calls served here, the others by `then`."""

        def on_call(call: HostCall) -> Any:
            if call.op not in STORE_OPS:
                return then(call)
            if ctx.script_id is None:
                raise HostCallError("invalid_request", NO_STORE)
            try:
                return self._serve(ctx.script_id, call)
            except script_store.StoreRefused as refused:
                raise HostCallError("invalid_request", refused.message) from None
            except IntegrityError:  # its script deleted between the check and the write
                raise HostCallError("invalid_request", script_store.SCRIPT_GONE) from None

        return on_call

    def _serve(self, script_id: int, call: HostCall) -> Any:
        key = call.args.get("key")
        if call.op == STORE_GET:
            with self._reads() as session:
                found, value = script_store.read_value(session, script_id=script_id, key=key)
            return {"found": True, "value": value} if found else {"found": False}
        if call.op == STORE_KEYS:
            with self._reads() as session:
                return script_store.keys(session, script_id=script_id)
        with self._writes() as session, session.begin():
            if call.op == STORE_SET:
                script_store.write_value(
                    session, script_id=script_id, key=key, value=call.args.get("value")
                )
                return None
            assert call.op == STORE_DELETE
            return script_store.delete_value(session, script_id=script_id, key=key)
