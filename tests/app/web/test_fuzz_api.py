"""Issue 12.5: schemathesis fuzzes every operation of /api/openapi.json as a signed-in
admin: no server error, and every answer (status, content type, body) as documented.

Bounded: a fixed number of examples per operation, in-process (WSGI), no network. The
operations that make the server call a provider (test connection, master/code connect,
revocation) or register a webhook URL are left out: fuzzed URLs must not leave the machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import db, extensions
from app.models import Role, Run, Schedule, Script, WebhookDelivery, WebhookEndpoint
from app.testing import signed_in_session
from tests.conftest import (
    add_member,
    create_closed_oauth_integration,
    create_facility,
    create_integration,
    create_user,
    make_app,
    stop_app,
)

EXAMPLES_PER_OPERATION = 12
# Would make the server dial the (fuzzed) provider URLs of an integration.
OUTBOUND = [
    ("POST", "/api/f/{slug}/integrations/{key}/test"),
    ("POST", "/api/f/{slug}/integrations/{key}/master"),
    ("DELETE", "/api/f/{slug}/integrations/{key}/master"),
    ("POST", "/api/f/{slug}/integrations/{key}/accounts/code"),
    ("DELETE", "/api/f/{slug}/accounts/{account_id}"),
    # A registered endpoint receives the run.finished of every fuzzed run.
    ("POST", "/api/f/{slug}/webhooks"),
    # A fuzzed url would receive the tests and redeliveries fuzzed after it.
    ("PATCH", "/api/f/{slug}/webhooks/{endpoint_id}"),
]
KNOWN_SCRIPT_ID = 7_340_033
# Revoking the fuzzing token itself would turn the rest of the run into 401s.
SELF_LOCKOUT = [("DELETE", "/api/tokens/{token_id}")]


@pytest.fixture(scope="module")
def fuzzed_app(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Flask, str, dict[str, Any]]]:
    """An app with facility `lab`, an admin with an API token, a script, a run, integrations."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    app = make_app(tmp)
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        admin = create_user(session, email="admin@example.com")
        add_member(session, user=admin, facility=lab, role=Role.admin)
        create_integration(session, facility=lab, key="keyed")
        create_closed_oauth_integration(session, facility=lab)
        # An id no fuzzed DELETE hits (they keep their fuzzed ids, and 1 is a favourite):
        # deleting it turned every later operation on it into a 404.
        script = Script(id=KNOWN_SCRIPT_ID, facility_id=lab.id, name="S", source="result = 1",
                        published=True)
        session.add(script)
        session.flush()
        run = Run(facility_id=lab.id, user_id=admin.id, source="result = 1")
        session.add(run)
        # A webhook endpoint whose tests and redeliveries stay on the machine: a closed
        # loopback port; no fuzzed run's event is for it.
        endpoint = WebhookEndpoint(
            facility_id=lab.id,
            url="http://127.0.0.1:9/hook",
            events=["account.needs_reauth"],
            secret_enc=extensions.vault(app).encrypt("whsec_fuzz"),
            active=True,
        )
        session.add(endpoint)
        session.flush()
        delivery = WebhookDelivery(
            endpoint_id=endpoint.id, facility_id=lab.id, event="account.needs_reauth",
            payload={}, status="delivered", attempts=1, response_code=200,
        )
        session.add(delivery)
        # A paused schedule of the script: the schedules operations find it, and it never
        # starts a run while the others are fuzzed.
        schedule = Schedule(facility_id=lab.id, script_id=script.id, created_by=admin.id,
                            cron="0 9 * * *", timezone="UTC", enabled=False)
        session.add(schedule)
        session.commit()
        admin_id = admin.id
        known = {
            "slug": "lab", "key": "keyed", "script_id": script.id, "run_id": run.id,
            "endpoint_id": endpoint.id, "delivery_id": delivery.id,
            "schedule_id": schedule.id,
        }
    client = app.test_client()
    with client.session_transaction() as cookie:
        cookie.update({**signed_in_session(app, admin_id), "csrf": "c"})
    token = client.post("/api/tokens", json={"name": "fuzz"}, headers={"X-CSRF-Token": "c"})
    yield app, token.get_json()["token"], known
    with app.app_context():
        db.session.remove()
    stop_app(app)  # a module's app: no test's teardown stops it


@pytest.mark.timeout(240)
def test_every_operation_answers_as_documented(
    fuzzed_app: tuple[Flask, str, dict[str, Any]],
) -> None:
    app, token, known = fuzzed_app
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    for method, path in OUTBOUND + SELF_LOCKOUT:
        schema = schema.exclude(method=method, path=path)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    failures: dict[str, str] = {}
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        try:
            _fuzz(operation, token, known, statuses.setdefault(operation.label, set()))
        except Exception as exc:  # collected so one run reports every operation
            inner = getattr(exc, "exceptions", None) or [exc]
            failures[operation.label] = "; ".join(f"{type(e).__name__}: {e}"[:1500] for e in inner)
    assert failures == {}
    # Authenticated for real: most operations got past the checks at least once.
    succeeded = [label for label, seen in statuses.items() if any(s < 300 for s in seen)]
    assert len(succeeded) >= len(operations) // 2, statuses
    for label in ("GET /api/me", "POST /api/f/{slug}/runs", "GET /api/f/{slug}/scripts"):
        assert label in succeeded, statuses.get(label)


def _fuzz(operation: Any, token: str, known: dict[str, Any], statuses: set[int]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
        # No shrinking: a failure is reported as found (shrinking one took minutes).
        phases=[Phase.explicit, Phase.generate],
    )
    def check(case: schemathesis.Case) -> None:
        # Real objects in the path, so operations get past "not found" (deletions keep
        # fuzzed ids: the objects must outlive the run).
        pinned = known if case.method != "DELETE" else {"slug": "lab"}
        given_path = case.path_parameters or {}
        case.path_parameters = {
            **given_path,
            **{k: v for k, v in pinned.items() if k in given_path},
        }
        if isinstance(case.body, dict):
            if "wait" in case.body:
                case.body["wait"] = 0  # a fuzzed run is not worth waiting minutes for
            if isinstance(case.body.get("script_id"), int):
                case.body["script_id"] = known["script_id"]
        response = case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"},
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ],
        )
        statuses.add(response.status_code)

    check()
