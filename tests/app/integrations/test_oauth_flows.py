"""OAuth2 against a real Authlib server: authorization code + PKCE, client credentials,
refresh (by margin, on rejection, racing), needs_reauth, forged callbacks, revocation."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from app import db, extensions
from app.errors import OAuthCallbackError, ValidationError
from app.integrations.tokens import NeedsReauth, TokenManager
from app.models import Account, Integration, OAuthState, WebhookDelivery, WebhookEndpoint
from app.models._types import utcnow
from app.services import (
    connection_checks,
    connections,
    disconnection,
    integration_views,
    integrations_admin,
    oauth_sign_in,
)
from tests.app.integrations.conftest import (
    REDIRECT,
    SECRETS,
    RealProvider,
    admin_lab,
    authorize,
    oauth_integration,
)

BINDING = "session-binding-of-this-browser"


def connect(
    session: Session,
    lab: dict[str, Any],
    integration: Integration,
    *,
    purpose: str = "connect",
    label: str = "",
    approve: bool = True,
    binding: str = BINDING,
) -> tuple[Account, OAuthState]:
    """Run the whole authorization-code flow the way a browser would."""
    code, state, error = authorize(
        session,
        integration,
        user_id=lab["user"].id,
        purpose=purpose,
        binding=BINDING,
        label=label,
        approve=approve,
    )
    result = oauth_sign_in.complete_authorization(
        session,
        state=state,
        code=code,
        error=error,
        session_binding=binding,
        redirect_uri=REDIRECT,
        vault=extensions.vault(), http=extensions.outbound(),
    )
    session.commit()
    return result


def tokens_of(account: Account) -> dict[str, Any]:
    return extensions.vault().decrypt_json(account.credentials_enc)


def manager(app: Flask, **kwargs: Any) -> TokenManager:
    return TokenManager(session_factory=db.session_factory(app), vault=extensions.vault(),
                        http=extensions.outbound(), **kwargs)


@pytest.mark.parametrize(
    ("client", "verb"),
    [("basic-client", "POST"), ("post-client", "POST"), ("basic-client", "GET")],
)
def test_authorization_code_with_pkce(
    session: Session, lab: dict[str, Any], provider: RealProvider, client: str, verb: str
) -> None:
    integration = oauth_integration(
        session, lab["facility"], provider, client=client, token_request_method=verb
    )
    account, state = connect(session, lab, integration)
    tokens = tokens_of(account)
    assert tokens["access_token"] and tokens["refresh_token"]
    assert account.owner_kind == "user" and account.user_id == lab["user"].id
    assert account.oauth_client_id == integration.current_client_id
    assert state.used_at is not None and state.code_verifier_enc is not None
    assert provider.stats["code_exchanges"] == 1
    assert tokens["access_token"] not in (account.credentials_enc or "")


def test_declining_at_the_provider_connects_nothing(
    session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    integration = oauth_integration(session, lab["facility"], provider)
    with pytest.raises(OAuthCallbackError, match="declined"):
        connect(session, lab, integration, approve=False)
    assert session.scalars(select(Account)).all() == []


def test_forged_and_replayed_callbacks_are_refused(
    session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    integration = oauth_integration(session, lab["facility"], provider)
    code, state, _ = authorize(session, integration, user_id=lab["user"].id, binding=BINDING)

    def complete(state_value: str) -> Any:
        return oauth_sign_in.complete_authorization(
            session,
            state=state_value,
            code=code,
            error=None,
            session_binding=BINDING,
            redirect_uri=REDIRECT,
            vault=extensions.vault(), http=extensions.outbound(),
        )

    with pytest.raises(OAuthCallbackError, match="not valid"):
        complete("forged-state")
    session.commit()
    account, _ = complete(state)  # the right browser still can (a forged state spent nothing)
    session.commit()
    with pytest.raises(OAuthCallbackError, match="already used"):
        complete(state)
    assert session.scalars(select(Account)).all() == [account]


def test_a_callback_in_another_browser_session_ends_the_sign_in_for_good(
    session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    # A callback URL (code and state) that left its browser: refused there, and then
    # refused in the starter's own browser too, not kept for later.
    integration = oauth_integration(session, lab["facility"], provider)
    code, state, _ = authorize(session, integration, user_id=lab["user"].id, binding=BINDING)

    def complete(binding: str) -> Any:
        return oauth_sign_in.complete_authorization(
            session,
            state=state,
            code=code,
            error=None,
            session_binding=binding,
            redirect_uri=REDIRECT,
            vault=extensions.vault(), http=extensions.outbound(),
        )

    with pytest.raises(OAuthCallbackError, match="another browser session, so it has been"):
        complete("someone-elses-session")
    session.commit()  # as the callback's view does when it refuses
    with pytest.raises(OAuthCallbackError, match="already used, or opened in another browser"):
        complete(BINDING)
    assert session.scalars(select(Account)).all() == []
    assert provider.stats["code_exchanges"] == 0


def test_an_expired_state_is_refused(
    session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    integration = oauth_integration(session, lab["facility"], provider)
    code, state, _ = authorize(session, integration, user_id=lab["user"].id, binding=BINDING)
    row = session.scalars(select(OAuthState)).one()
    row.expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    with pytest.raises(OAuthCallbackError, match="expired"):
        oauth_sign_in.complete_authorization(
            session,
            state=state,
            code=code,
            error=None,
            session_binding=BINDING,
            redirect_uri=REDIRECT,
            vault=extensions.vault(), http=extensions.outbound(),
        )
    assert session.scalars(select(Account)).all() == []


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/steal", "//evil.example/x", "http://127.0.0.1:5000.evil.example/"],
)
def test_return_to_must_be_an_allowed_origin(
    session: Session, lab: dict[str, Any], provider: RealProvider, target: str
) -> None:
    integration = oauth_integration(session, lab["facility"], provider)
    with pytest.raises(ValidationError, match="allowed origin"):
        oauth_sign_in.start_authorization(
            session,
            integration=integration,
            user_id=lab["user"].id,
            facility_id=lab["facility"].id,
            purpose="api",
            session_binding=BINDING,
            redirect_uri=REDIRECT,
            vault=extensions.vault(),
            return_to=target,
            allowed_return_origins=["https://app.example.com"],
        )


def test_client_credentials(session: Session, lab: dict[str, Any], provider: RealProvider) -> None:
    integration = oauth_integration(
        session,
        lab["facility"],
        provider,
        key="machine",
        auth_mode="oauth2_client_credentials",
        client="machine",
        authorization_url=None,
        scopes=[],
    )
    account = connections.connect_client_credentials(
        session, integration=integration, vault=extensions.vault(), http=extensions.outbound()
    )
    session.commit()
    assert account.owner_kind == "master" and tokens_of(account)["access_token"]
    assert provider.stats["token_requests"] == 1


def test_an_oauth_connection_is_announced_to_the_facilitys_endpoints(
    session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    """`account.connected` through the OAuth path (store_oauth_account): enqueued with the
    connection, `reconnected` once the account was there; never the token."""
    integration = oauth_integration(
        session, lab["facility"], provider, key="machine",
        auth_mode="oauth2_client_credentials", client="machine", authorization_url=None,
        scopes=[],
    )
    session.add(WebhookEndpoint(facility_id=lab["facility"].id, url="https://example.com/h",
                                events=["account.connected"], secret_enc="unused"))
    session.commit()
    for _ in range(2):
        account = connections.connect_client_credentials(
            session, integration=integration, vault=extensions.vault(),
            http=extensions.outbound(),
        )
        session.commit()
    payloads = [d.payload for d in session.scalars(
        select(WebhookDelivery).order_by(WebhookDelivery.created_at))]
    assert [p["event"] for p in payloads] == ["account.connected"] * 2
    assert [p["data"]["reconnected"] for p in payloads] == [False, True]
    assert payloads[0]["data"]["account_id"] == account.id
    assert payloads[0]["data"]["owner"] == "master"
    assert tokens_of(account)["access_token"] not in str(payloads)


def test_refresh_happens_only_inside_the_margin(
    app: Flask, session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    account, _ = connect(session, lab, oauth_integration(session, lab["facility"], provider))
    tokens = manager(app, margin_s=1800)
    first = tokens.credentials(account.id)
    assert provider.stats["refreshes"] == 0  # an hour left, margin capped at half the lifetime
    account.token_issued_at = utcnow() - timedelta(seconds=3000)
    account.token_expires_at = utcnow() + timedelta(seconds=600)  # inside min(1800, 1800)
    session.commit()
    second = tokens.credentials(account.id)
    assert provider.stats["refreshes"] == 1
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]  # the provider rotates them


def test_short_lived_tokens_cap_the_margin_at_half_their_life(
    app: Flask, session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    account, _ = connect(session, lab, oauth_integration(session, lab["facility"], provider))
    account.token_issued_at = utcnow() - timedelta(seconds=10)
    account.token_expires_at = utcnow() + timedelta(seconds=50)  # lifetime 60 s: margin 30 s
    session.commit()
    manager(app, margin_s=1800).credentials(account.id)
    assert provider.stats["refreshes"] == 0
    account.token_issued_at = utcnow() - timedelta(seconds=40)
    account.token_expires_at = utcnow() + timedelta(seconds=20)  # lifetime 60 s, 20 s left
    session.commit()
    manager(app, margin_s=1800).credentials(account.id)
    assert provider.stats["refreshes"] == 1


def _expire(session: Session, account: Account) -> None:
    account.token_issued_at = utcnow() - timedelta(hours=2)
    account.token_expires_at = utcnow() - timedelta(seconds=1)
    session.commit()


def test_fifty_threads_on_an_expired_token_refresh_once(
    app: Flask, session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    account, _ = connect(session, lab, oauth_integration(session, lab["facility"], provider))
    _expire(session, account)
    tokens = manager(app)
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(50)

    def worker() -> None:
        barrier.wait()
        try:
            results.append(tokens.credentials(account.id)["access_token"])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert provider.stats["refreshes"] == 1
    assert len(set(results)) == 1 and len(results) == 50


def _race_two_processes(url: str, account_id: int, app: Flask, provider: RealProvider) -> None:
    """Two TokenManagers with their own engines act like two server processes."""
    managers, engines = [], []
    for _ in range(2):
        engine = create_engine(url)
        engines.append(engine)
        managers.append(
            TokenManager(
                session_factory=sessionmaker(engine, expire_on_commit=False),
                vault=extensions.vault(), http=extensions.outbound(app),
            )
        )
    results: list[str] = []
    barrier = threading.Barrier(20)

    def worker(index: int) -> None:
        barrier.wait()
        results.append(managers[index % 2].credentials(account_id)["access_token"])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    assert provider.stats["refreshes"] == 1
    assert len(results) == 20 and len(set(results)) == 1


@pytest.mark.sqlite_only  # the PostgreSQL twin is below
def test_two_processes_sharing_sqlite_refresh_once(
    app: Flask, session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    account, _ = connect(session, lab, oauth_integration(session, lab["facility"], provider))
    _expire(session, account)
    _race_two_processes(app.config["DATABASE_URL"], account.id, app, provider)


def test_invalid_grant_marks_the_account_needs_reauth(
    app: Flask, session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    account, _ = connect(session, lab, oauth_integration(session, lab["facility"], provider))
    _expire(session, account)
    provider.state.revoke_all_refresh_tokens()
    with pytest.raises(NeedsReauth):
        manager(app).credentials(account.id)
    session.expire_all()
    assert session.get(Account, account.id).status == "needs_reauth"
    with pytest.raises(NeedsReauth):  # and it stays so without asking the provider again
        manager(app).credentials(account.id)
    assert provider.stats["token_requests"] == 2  # the code exchange and one refresh


def test_refresh_after_rejection_refreshes_once(
    app: Flask, session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    account, _ = connect(session, lab, oauth_integration(session, lab["facility"], provider))
    old = tokens_of(account)["access_token"]
    tokens = manager(app)
    fresh = tokens.refresh_after_rejection(account.id, old)
    again = tokens.refresh_after_rejection(account.id, old)  # someone else's stale token
    assert fresh["access_token"] != old and again == fresh
    assert provider.stats["refreshes"] == 1


def test_accounts_keep_the_client_that_issued_them(
    app: Flask, session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    integration = oauth_integration(session, lab["facility"], provider)
    account, _ = connect(session, lab, integration)
    old_client = account.oauth_client_id
    integrations_admin.update_integration(
        session,
        integration,
        {"client_id": "second-client", "client_secret": SECRETS["second-client"]},
    )
    session.commit()
    assert integration.current_client_id != old_client
    _expire(session, account)
    manager(app).credentials(account.id)  # refreshed with basic-client, which issued it
    assert provider.stats["refreshes"] == 1
    newer, _ = connect(session, lab, integration, label="second")
    assert newer.oauth_client_id == integration.current_client_id


def test_a_blank_secret_on_update_keeps_the_saved_one(
    session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    integration = oauth_integration(session, lab["facility"], provider)
    before = integration.current_client_id
    integrations_admin.update_integration(
        session, integration, {"client_secret": "", "name": "Renamed"}
    )
    assert integration.current_client_id == before and integration.name == "Renamed"
    view = integration_views.integration_public_view(integration)
    assert view["has_client_secret"] is True
    assert SECRETS["basic-client"] not in repr(view)


def test_disconnect_revokes_at_the_provider(
    session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    account, _ = connect(session, lab, oauth_integration(session, lab["facility"], provider))
    disconnection.disconnect(session, account, extensions.vault(), extensions.outbound())
    session.commit()
    assert provider.stats["revocations"] == 1
    assert session.scalars(select(Account)).all() == []


def test_test_connection_reports_the_providers_answer(
    session: Session, lab: dict[str, Any], provider: RealProvider
) -> None:
    good = oauth_integration(session, lab["facility"], provider)
    answer = connection_checks.test_connection(good, extensions.vault(), extensions.outbound())
    assert answer["ok"] is True and "accepted" in answer["message"]
    bad = oauth_integration(
        session, lab["facility"], provider, key="bad", client_secret="not-the-secret"
    )
    answer = connection_checks.test_connection(bad, extensions.vault(), extensions.outbound())
    assert answer["ok"] is False and answer["error"] == "invalid_client"
    assert "invalid_client" in answer["message"]


def test_key_rotation_reencrypts_everything(
    app: Flask, session: Session, lab: dict[str, Any], provider: RealProvider, tmp_path: Path
) -> None:
    from cryptography.fernet import Fernet

    from app.integrations.vault import Vault
    from app.services.vault_rotation import rotate_all

    integration = oauth_integration(
        session, lab["facility"], provider, default_headers={"X-Static": "static-value-3"}
    )
    account, _ = connect(session, lab, integration)
    secret_before = tokens_of(account)
    old_key = app.config["SECRET_KEYS"][0]
    new_key = Fernet.generate_key().decode()
    app.extensions["vault"] = Vault([new_key, old_key])
    rotated = rotate_all(session=session, vault=extensions.vault())
    assert rotated >= 3  # client secret, account, state's verifier
    only_new = Vault([new_key])
    session.expire_all()
    stored = session.get(Account, account.id)
    assert only_new.decrypt_json(stored.credentials_enc) == secret_before
    from app.models import OAuthClient

    for client in session.scalars(select(OAuthClient)):
        only_new.decrypt(client.client_secret_enc)
    sealed = session.get(Integration, integration.id).defaults_enc
    assert only_new.decrypt_json(sealed)["headers"] == {"X-Static": "static-value-3"}
    with pytest.raises(Exception, match="cannot be decrypted"):
        Vault([old_key]).decrypt(stored.credentials_enc)


@pytest.mark.postgres
def test_two_processes_sharing_postgres_refresh_once(
    tmp_path: Path, postgres_url: str, provider: RealProvider
) -> None:
    from tests.conftest import make_app

    app = make_app(tmp_path, DATABASE_URL=postgres_url)
    with app.app_context():
        session = db.session()
        lab = admin_lab(session)
        account, _ = connect(session, lab, oauth_integration(session, lab["facility"], provider))
        _expire(session, account)
        _race_two_processes(postgres_url, account.id, app, provider)
        db.session.remove()
    app.extensions["db_engine"].dispose()
