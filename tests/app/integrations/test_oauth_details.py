"""OAuth callback details against the real Authlib provider: RFC 9207 issuer, the provider's
error description, role re-checks, atomic state consumption, PKCE for native-app codes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import db, extensions
from app.devprovider import (
    ClientSpec,
    ProviderConfig,
    create_provider_app,
    provider_of,
    serve_in_thread,
)
from app.errors import OAuthCallbackError, ValidationError
from app.integrations import oauth
from app.models import Account, Integration
from app.services import connections, integrations_admin, oauth_sign_in, people
from app.testing import signed_in_session
from tests.app.integrations.conftest import (
    REDIRECT,
    SECRETS,
    RealProvider,
    admin_lab,
    answer_consent,
    authorize,
    code_and_state,
    oauth_integration,
)
from tests.conftest import add_member, create_user, make_app

BINDING = "binding-of-this-browser"


def complete(
    session: Session, state: str, code: str | None, app: Flask | None = None, **callback: Any
) -> Account:
    account, _ = oauth_sign_in.complete_authorization(
        session,
        state=state,
        code=code,
        error=callback.pop("error", None),
        session_binding=BINDING,
        redirect_uri=REDIRECT,
        vault=extensions.vault(app),
        http=extensions.outbound(app),
        **callback,
    )
    return account


def started(session: Session, lab: dict[str, Any], integration: Integration, **kw: Any) -> Any:
    return authorize(session, integration, user_id=lab["user"].id, binding=BINDING, **kw)


@pytest.mark.parametrize(
    ("declared", "sent", "accepted"),
    [
        (None, None, True),  # no issuer either way: nothing to check
        (None, "{provider}", True),  # the authorization endpoint's origin
        (None, "https://evil.example", False),  # a mix-up: another provider answered
        ("https://issuer.example", "https://issuer.example", True),
        ("https://issuer.example", None, False),  # declared, so it must be sent
        ("https://issuer.example", "{provider}", False),
    ],
)
def test_the_callbacks_issuer_must_match(
    session: Session,
    lab: dict[str, Any],
    provider: RealProvider,
    declared: str | None,
    sent: str | None,
    accepted: bool,
) -> None:
    integration = oauth_integration(session, lab["facility"], provider, issuer=declared)
    code, state, _ = started(session, lab, integration)
    iss = sent.format(provider=provider.url) if sent else None
    if accepted:
        assert complete(session, state, code, iss=iss).status == "active"
        assert provider.stats["code_exchanges"] == 1
    else:
        with pytest.raises(OAuthCallbackError, match="issuer"):
            complete(session, state, code, iss=iss)
        assert provider.stats["code_exchanges"] == 0  # the code never left


def test_the_providers_error_description_reaches_the_page(
    app: Flask, session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    integration = oauth_integration(session, lab["facility"], provider)
    session.commit()  # the server-side session below is written by another connection
    client = app.test_client()
    signed_in = signed_in_session(app, lab["user"].id)
    with client.session_transaction() as browser:
        browser.update({**signed_in, "csrf": "t"})
    binding = people_binding(signed_in["sid"])
    _code, state, _ = authorize(session, integration, user_id=lab["user"].id, binding=binding)
    page = client.get(
        "/oauth/callback",
        query_string={
            "state": state,
            "error": "invalid_scope",
            "error_description": "scope <admin> is not granted to this client",
        },
    )
    assert page.status_code == 400
    text = page.get_data(as_text=True)
    assert "invalid_scope" in text
    assert "scope &lt;admin&gt; is not granted to this client" in text  # shown, and escaped


def people_binding(sid: str) -> str:
    """What app.web.security.session_binding computes for a session id."""
    import hashlib

    return hashlib.sha256(f"session:{sid}".encode()).hexdigest()


@pytest.mark.parametrize(("purpose", "new_role"), [("master", "scripter"), ("connect", None)])
def test_the_callback_rechecks_membership_and_role(
    session: Session,
    lab: dict[str, Any],
    provider: RealProvider,
    purpose: str,
    new_role: str | None,
) -> None:
    integration = oauth_integration(session, lab["facility"], provider)
    code, state, _ = started(session, lab, integration, purpose=purpose)
    if new_role is None:
        session.delete(people.membership_of(session, lab["user"].id, lab["facility"].id))
    else:
        # Another admin first: the last admin of a facility cannot be demoted.
        other = create_user(session, email="grace@example.com", name="Grace")
        add_member(session, user=other, facility=lab["facility"], role="admin")
        add_member(session, user=lab["user"], facility=lab["facility"], role=new_role)
    session.commit()
    with pytest.raises(OAuthCallbackError, match="no longer"):
        complete(session, state, code)
    assert session.scalars(select(Account)).all() == []
    assert provider.stats["code_exchanges"] == 0


def _parallel_callbacks(app: Flask, state: str, code: str | None) -> list[str]:
    factory = db.session_factory(app)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def callback() -> None:
        with factory() as own:
            barrier.wait()
            try:
                complete(own, state, code, app)
                own.commit()
                outcomes.append("connected")
            except OAuthCallbackError as exc:
                own.rollback()
                outcomes.append(exc.message)

    threads = [threading.Thread(target=callback) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


USED = (
    "This sign-in link was already used, or opened in another browser session. "
    "Nothing was connected by it. Start the sign-in again."
)


def test_parallel_callbacks_with_one_state_consume_it_once(
    app: Flask, session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    integration = oauth_integration(session, lab["facility"], provider)
    code, state, _ = started(session, lab, integration)
    assert _parallel_callbacks(app, state, code) == sorted(["connected"] + [USED] * 5)
    assert provider.stats["code_exchanges"] == 1


@pytest.mark.postgres
def test_parallel_callbacks_consume_a_state_once_on_postgres(
    tmp_path: Path, postgres_url: str, provider: RealProvider
) -> None:
    app = make_app(tmp_path, DATABASE_URL=postgres_url)  # migrated, 0004 included
    with app.app_context():
        session = db.session()
        lab = admin_lab(session)
        integration = oauth_integration(session, lab["facility"], provider)
        code, state, _ = started(session, lab, integration)
        assert _parallel_callbacks(app, state, code) == sorted(["connected"] + [USED] * 5)
        assert provider.stats["code_exchanges"] == 1
        db.session.remove()
    app.extensions["db_engine"].dispose()


def native_code(integration: Integration, verifier: str | None) -> str:
    """A code as a native app gets it: its own authorization request, its own verifier."""
    url = oauth.authorization_url(
        oauth.OAuthSettings.of(integration),
        client_id=integration.current_client.client_id,
        redirect_uri=REDIRECT,
        state="native-app-state",
        code_verifier=verifier,
    )
    code, _, error = code_and_state(answer_consent(url))
    assert code is not None, error
    return code


def connect_code(
    session: Session, lab: dict[str, Any], integration: Integration, code: str, verifier: Any
) -> Account:
    return connections.connect_with_code(
        session,
        integration=integration,
        user_id=lab["user"].id,
        facility_id=lab["facility"].id,
        code=code,
        redirect_uri=REDIRECT,
        vault=extensions.vault(),
        code_verifier=verifier,
        http=extensions.outbound(),
    )


@pytest.fixture(scope="module")
def lenient_provider() -> Iterator[RealProvider]:
    """A provider that issues codes without PKCE too (as some real ones do)."""
    client = ClientSpec(
        "basic-client",
        SECRETS["basic-client"],
        [REDIRECT],
        token_endpoint_auth_method="client_secret_basic",
    )
    app = create_provider_app(ProviderConfig(clients=[client], require_pkce=False))
    with serve_in_thread(app) as server:
        yield RealProvider(server.url, provider_of(app))


def test_native_app_codes_need_their_pkce_verifier_unless_the_admin_allows_plain_codes(
    session: Session, lab: dict[str, Any], lenient_provider: RealProvider
) -> None:
    lenient_provider.stats.reset()
    integration = oauth_integration(session, lab["facility"], lenient_provider)
    verifier = "v" * 64
    with_pkce = native_code(integration, verifier)
    assert connect_code(session, lab, integration, with_pkce, verifier).status == "active"
    plain = native_code(integration, None)
    with pytest.raises(ValidationError) as refused:
        connect_code(session, lab, integration, plain, None)
    assert refused.value.details == {"field": "code_verifier"}
    assert lenient_provider.stats["code_exchanges"] == 1  # the plain code was never sent
    integrations_admin.update_integration(session, integration, {"allow_plain_codes": True})
    assert connect_code(session, lab, integration, plain, None).status == "active"
    assert lenient_provider.stats["code_exchanges"] == 2


@pytest.mark.parametrize("issuer", ["http://issuer.example", "https://x.example/?a=1", "nope"])
def test_an_issuer_must_be_an_https_url(
    session: Session, lab: dict[str, Any], provider: RealProvider, issuer: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        oauth_integration(session, lab["facility"], provider, issuer=issuer)
    assert refused.value.details == {"field": "issuer"}
