"""OAuth flows against the dev provider served on loopback, driven with plain requests."""

import base64
import hashlib
import html
import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from app.devprovider import (
    ClientSpec,
    ProviderConfig,
    answer_consent,
    create_provider_app,
    serve_in_thread,
)

# Never contacted: the tests read the code from the redirect's Location header.
REDIRECT_URI = "http://127.0.0.1:9/callback"

BASIC_CLIENT = ClientSpec(
    client_id="basic-client",
    client_secret="basic-secret",
    redirect_uris=[REDIRECT_URI],
    grant_types=["authorization_code", "refresh_token", "client_credentials"],
    scope="read write",
)
POST_CLIENT = ClientSpec(
    client_id="post-client",
    client_secret="post-secret",
    redirect_uris=[REDIRECT_URI],
    token_endpoint_auth_method="client_secret_post",
)
PUBLIC_CLIENT = ClientSpec(
    client_id="public-client",
    redirect_uris=[REDIRECT_URI],
    token_endpoint_auth_method="none",
)


@pytest.fixture
def provider_config() -> ProviderConfig:
    return ProviderConfig(clients=[BASIC_CLIENT, POST_CLIENT, PUBLIC_CLIENT])


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, challenge_of(verifier)


def consent_page(http, base_url, *, client_id, challenge=None, scope="read", state="st-1", **extra):
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": state,
        **extra,
    }
    if challenge is not None:
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return http.get(f"{base_url}/authorize", params=params, allow_redirects=False)


def form_action(page: requests.Response) -> str:
    match = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert match, page.text
    return html.unescape(match.group(1))


def decide(http, base_url, page, *, decision="approve", username="alice") -> dict[str, str]:
    """Submit the consent form; return the query of the redirect back to the client."""
    action = form_action(page)
    resp = http.post(
        base_url + action,
        data={"username": username, "decision": decision},
        allow_redirects=False,
    )
    assert resp.status_code == 302, resp.text
    location = resp.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def get_code(http, base_url, client: ClientSpec, *, verifier=None, scope="read", username="alice"):
    """Approve an authorization request with answer_consent; return the issued code."""
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": "st-1",
    }
    if verifier is not None:
        params |= {"code_challenge": challenge_of(verifier), "code_challenge_method": "S256"}
    url = requests.Request("GET", f"{base_url}/authorize", params=params).prepare().url
    location = answer_consent(url, username=username, session=http)
    assert location.startswith(REDIRECT_URI + "?"), location
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st-1"]
    return query["code"][0]


def token_request(http, base_url, client: ClientSpec, data: dict, *, verb="POST"):
    """Call the token endpoint authenticating the way the client is registered to."""
    data = dict(data)
    auth = None
    method = client.token_endpoint_auth_method
    if method == "client_secret_basic":
        auth = (client.client_id, client.client_secret)
    elif method == "client_secret_post":
        data |= {"client_id": client.client_id, "client_secret": client.client_secret}
    else:
        data["client_id"] = client.client_id
    if verb == "GET":
        return http.get(f"{base_url}/token", params=data, auth=auth)
    return http.post(f"{base_url}/token", data=data, auth=auth)


def code_flow(http, base_url, client: ClientSpec, *, verb="POST", scope="read") -> dict:
    verifier, _ = pkce_pair()
    code = get_code(http, base_url, client, verifier=verifier, scope=scope)
    resp = token_request(
        http,
        base_url,
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        verb=verb,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def refresh(http, base_url, client: ClientSpec, refresh_token: str) -> requests.Response:
    return token_request(
        http, base_url, client, {"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


def me(http, base_url, access_token: str) -> requests.Response:
    return http.get(f"{base_url}/api/me", headers={"Authorization": f"Bearer {access_token}"})


# -- consent page -------------------------------------------------------------------------


def test_consent_page_shows_client_scopes_users_and_buttons(http, server):
    _, challenge = pkce_pair()
    page = consent_page(
        http, server.url, client_id="basic-client", challenge=challenge, scope="read write"
    )

    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "basic-client" in page.text
    assert "<code>read</code>" in page.text and "<code>write</code>" in page.text
    assert '<option value="alice">' in page.text and '<option value="bob">' in page.text
    assert 'id="approve"' in page.text and 'id="deny"' in page.text
    assert form_action(page).startswith("/authorize?")


def test_unregistered_redirect_uri_is_shown_not_redirected(http, server):
    _, challenge = pkce_pair()
    page = consent_page(
        http,
        server.url,
        client_id="basic-client",
        challenge=challenge,
        redirect_uri="http://evil.example/cb",
    )

    assert page.status_code == 400
    assert "Location" not in page.headers
    assert "invalid_request" in page.text


def test_unknown_client_is_shown_not_redirected(http, server):
    page = consent_page(http, server.url, client_id="nobody")

    assert page.status_code == 400
    assert "invalid_client" in page.text


def test_deny_redirects_with_access_denied_and_state(http, server):
    _, challenge = pkce_pair()
    page = consent_page(http, server.url, client_id="basic-client", challenge=challenge)

    result = decide(http, server.url, page, decision="deny")

    assert result["error"] == "access_denied"
    assert result["state"] == "st-1"
    assert "code" not in result


def test_unknown_username_is_refused(http, server):
    _, challenge = pkce_pair()
    page = consent_page(http, server.url, client_id="basic-client", challenge=challenge)

    resp = http.post(
        server.url + form_action(page),
        data={"username": "mallory", "decision": "approve"},
        allow_redirects=False,
    )

    assert resp.status_code == 400


# -- authorization code + PKCE ------------------------------------------------------------


@pytest.mark.parametrize(
    "client", [BASIC_CLIENT, POST_CLIENT, PUBLIC_CLIENT], ids=lambda c: c.client_id
)
def test_code_flow_with_pkce(http, server, provider, client):
    tokens = code_flow(http, server.url, client, scope="read")

    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["scope"] == "read"
    assert tokens["refresh_token"]
    resp = me(http, server.url, tokens["access_token"])
    assert resp.status_code == 200
    assert resp.json() | {"auth": None} == {
        "username": "alice",
        "scope": "read",
        "client_id": client.client_id,
        "auth": None,
    }
    assert provider.stats["code_exchanges"] == 1
    assert provider.stats["token_requests"] == 1


def test_token_endpoint_accepts_get(http, server, provider):
    tokens = code_flow(http, server.url, BASIC_CLIENT, verb="GET")

    assert me(http, server.url, tokens["access_token"]).json()["username"] == "alice"
    assert provider.stats["code_exchanges"] == 1


def test_get_token_with_client_secret_post(http, server):
    tokens = code_flow(http, server.url, POST_CLIENT, verb="GET")

    assert tokens["access_token"]


def test_user_choice_reaches_the_token(http, server):
    verifier, _ = pkce_pair()
    code = get_code(http, server.url, BASIC_CLIENT, verifier=verifier, username="bob")
    tokens = token_request(
        http,
        server.url,
        BASIC_CLIENT,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    ).json()

    assert me(http, server.url, tokens["access_token"]).json()["username"] == "bob"


def test_no_scope_requested_grants_the_clients_scope(http, server):
    tokens = code_flow(http, server.url, BASIC_CLIENT, scope="")

    assert tokens["scope"] == "read write"


def test_wrong_pkce_verifier_is_rejected(http, server, provider):
    verifier, _ = pkce_pair()
    code = get_code(http, server.url, BASIC_CLIENT, verifier=verifier)
    other_verifier, _ = pkce_pair()

    resp = token_request(
        http,
        server.url,
        BASIC_CLIENT,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": other_verifier,
        },
    )

    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"
    assert provider.stats["code_exchanges"] == 0


def test_missing_verifier_is_rejected(http, server):
    verifier, _ = pkce_pair()
    code = get_code(http, server.url, BASIC_CLIENT, verifier=verifier)

    resp = token_request(
        http,
        server.url,
        BASIC_CLIENT,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
    )

    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_request"


def test_authorization_without_challenge_is_refused_when_pkce_required(http, server):
    page = consent_page(http, server.url, client_id="basic-client")

    assert page.status_code == 302
    query = parse_qs(urlsplit(page.headers["Location"]).query)
    assert query["error"] == ["invalid_request"]
    assert query["state"] == ["st-1"]


def test_plain_challenge_method_is_refused(http, server):
    page = consent_page(
        http,
        server.url,
        client_id="basic-client",
        code_challenge="a" * 43,
        code_challenge_method="plain",
    )

    assert page.status_code == 302
    assert parse_qs(urlsplit(page.headers["Location"]).query)["error"] == ["invalid_request"]


def test_pkce_optional_when_not_required(http):
    app = create_provider_app(ProviderConfig(clients=[BASIC_CLIENT], require_pkce=False))
    with serve_in_thread(app) as server:
        code = get_code(http, server.url, BASIC_CLIENT)
        resp = token_request(
            http,
            server.url,
            BASIC_CLIENT,
            {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        )

    assert resp.status_code == 200, resp.text


def test_code_is_single_use(http, server):
    verifier, _ = pkce_pair()
    code = get_code(http, server.url, BASIC_CLIENT, verifier=verifier)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }

    first = token_request(http, server.url, BASIC_CLIENT, data)
    second = token_request(http, server.url, BASIC_CLIENT, data)

    assert first.status_code == 200
    assert second.status_code == 400
    assert second.json()["error"] == "invalid_grant"


def test_code_bound_to_its_client(http, server):
    verifier, _ = pkce_pair()
    code = get_code(http, server.url, BASIC_CLIENT, verifier=verifier)

    resp = token_request(
        http,
        server.url,
        POST_CLIENT,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    )

    assert resp.json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_invalid_client(http, server):
    resp = http.post(
        f"{server.url}/token",
        data={"grant_type": "client_credentials"},
        auth=("basic-client", "wrong"),
    )

    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")


def test_client_must_use_its_registered_auth_method(http, server):
    resp = http.post(
        f"{server.url}/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "basic-client",
            "client_secret": "basic-secret",
        },
    )

    assert resp.json()["error"] == "invalid_client"


# -- client credentials -------------------------------------------------------------------


def test_client_credentials(http, server):
    resp = token_request(
        http, server.url, BASIC_CLIENT, {"grant_type": "client_credentials", "scope": "read"}
    )

    assert resp.status_code == 200, resp.text
    tokens = resp.json()
    assert "refresh_token" not in tokens
    assert me(http, server.url, tokens["access_token"]).json() == {
        "username": None,
        "scope": "read",
        "client_id": "basic-client",
        "auth": "bearer",
    }


def test_client_credentials_needs_the_grant_type(http, server):
    resp = token_request(http, server.url, POST_CLIENT, {"grant_type": "client_credentials"})

    assert resp.json()["error"] == "unauthorized_client"


# -- refresh ------------------------------------------------------------------------------


def test_refresh_rotates_and_old_token_is_invalid_grant(http, server, provider):
    tokens = code_flow(http, server.url, BASIC_CLIENT)

    resp = refresh(http, server.url, BASIC_CLIENT, tokens["refresh_token"])

    assert resp.status_code == 200, resp.text
    new = resp.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert new["access_token"] != tokens["access_token"]
    assert new["scope"] == "read"
    assert me(http, server.url, new["access_token"]).json()["username"] == "alice"
    again = refresh(http, server.url, BASIC_CLIENT, tokens["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert refresh(http, server.url, BASIC_CLIENT, new["refresh_token"]).status_code == 200
    assert provider.stats["refreshes"] == 2


def test_public_client_refreshes(http, server):
    tokens = code_flow(http, server.url, PUBLIC_CLIENT)

    resp = refresh(http, server.url, PUBLIC_CLIENT, tokens["refresh_token"])

    assert resp.status_code == 200, resp.text


def test_refresh_without_rotation_keeps_the_refresh_token(http):
    app = create_provider_app(ProviderConfig(clients=[BASIC_CLIENT], rotate_refresh_tokens=False))
    with serve_in_thread(app) as server:
        tokens = code_flow(http, server.url, BASIC_CLIENT)
        first = refresh(http, server.url, BASIC_CLIENT, tokens["refresh_token"])
        second = refresh(http, server.url, BASIC_CLIENT, tokens["refresh_token"])

    assert first.status_code == second.status_code == 200
    assert "refresh_token" not in first.json()


def test_refresh_token_bound_to_its_client(http, server):
    tokens = code_flow(http, server.url, BASIC_CLIENT)

    resp = refresh(http, server.url, POST_CLIENT, tokens["refresh_token"])

    assert resp.json()["error"] == "invalid_grant"


def test_revoke_all_refresh_tokens_forces_invalid_grant(http, server, provider):
    alice = code_flow(http, server.url, BASIC_CLIENT)
    verifier, _ = pkce_pair()
    code = get_code(http, server.url, BASIC_CLIENT, verifier=verifier, username="bob")
    bob = token_request(
        http,
        server.url,
        BASIC_CLIENT,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    ).json()

    assert provider.revoke_all_refresh_tokens(username="alice") == 1

    assert refresh(http, server.url, BASIC_CLIENT, alice["refresh_token"]).json()["error"] == (
        "invalid_grant"
    )
    assert refresh(http, server.url, BASIC_CLIENT, bob["refresh_token"]).status_code == 200
    assert me(http, server.url, alice["access_token"]).status_code == 200


def test_concurrent_refreshes_with_one_rotating_token_let_exactly_one_through(
    http, server, provider
):
    tokens = code_flow(http, server.url, BASIC_CLIENT)
    barrier = threading.Barrier(50)

    def attempt(_):
        with requests.Session() as session:
            barrier.wait()
            return refresh(session, server.url, BASIC_CLIENT, tokens["refresh_token"])

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(attempt, range(50)))

    ok = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code != 200]
    assert len(ok) == 1
    assert {r.status_code for r in refused} == {400}
    assert {r.json()["error"] for r in refused} == {"invalid_grant"}
    assert refresh(http, server.url, BASIC_CLIENT, ok[0].json()["refresh_token"]).ok
    assert provider.stats["refreshes"] == 2


def test_concurrent_code_exchanges_let_exactly_one_through(server):
    with requests.Session() as http:
        verifier, _ = pkce_pair()
        code = get_code(http, server.url, BASIC_CLIENT, verifier=verifier)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    barrier = threading.Barrier(20)

    def attempt(_):
        with requests.Session() as session:
            barrier.wait()
            return token_request(session, server.url, BASIC_CLIENT, data).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = sorted(pool.map(attempt, range(20)))

    assert codes == [200] + [400] * 19


# -- access token expiry and revocation ---------------------------------------------------


def test_expired_access_token_gets_401_invalid_token(http, server, provider):
    tokens = code_flow(http, server.url, BASIC_CLIENT)
    assert me(http, server.url, tokens["access_token"]).status_code == 200

    assert provider.expire_access_tokens() == 1

    resp = me(http, server.url, tokens["access_token"])
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_token"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    fresh = refresh(http, server.url, BASIC_CLIENT, tokens["refresh_token"]).json()
    assert me(http, server.url, fresh["access_token"]).status_code == 200


def test_configured_lifetime_is_announced(http):
    app = create_provider_app(ProviderConfig(clients=[BASIC_CLIENT], access_token_lifetime=2))
    with serve_in_thread(app) as server:
        tokens = code_flow(http, server.url, BASIC_CLIENT)
        refreshed = refresh(http, server.url, BASIC_CLIENT, tokens["refresh_token"]).json()
        machine = token_request(
            http, server.url, BASIC_CLIENT, {"grant_type": "client_credentials"}
        )

    assert tokens["expires_in"] == refreshed["expires_in"] == machine.json()["expires_in"] == 2


def test_unknown_or_missing_token_gets_401(http, server):
    unknown = me(http, server.url, "not-a-token")
    missing = http.get(f"{server.url}/api/me")

    assert unknown.status_code == 401
    assert unknown.json()["error"] == "invalid_token"
    assert "WWW-Authenticate" in unknown.headers
    assert missing.status_code == 401
    assert "WWW-Authenticate" in missing.headers


def test_revoking_an_access_token(http, server, provider):
    tokens = code_flow(http, server.url, BASIC_CLIENT)

    resp = http.post(
        f"{server.url}/revoke",
        data={"token": tokens["access_token"], "token_type_hint": "access_token"},
        auth=(BASIC_CLIENT.client_id, BASIC_CLIENT.client_secret),
    )

    assert resp.status_code == 200
    assert me(http, server.url, tokens["access_token"]).status_code == 401
    assert refresh(http, server.url, BASIC_CLIENT, tokens["refresh_token"]).status_code == 200
    assert provider.stats["revocations"] == 1


def test_revoking_a_refresh_token_revokes_its_access_token(http, server):
    tokens = code_flow(http, server.url, POST_CLIENT)

    resp = http.post(
        f"{server.url}/revoke",
        data={
            "token": tokens["refresh_token"],
            "client_id": POST_CLIENT.client_id,
            "client_secret": POST_CLIENT.client_secret,
        },
    )

    assert resp.status_code == 200
    assert refresh(http, server.url, POST_CLIENT, tokens["refresh_token"]).json()["error"] == (
        "invalid_grant"
    )
    assert me(http, server.url, tokens["access_token"]).status_code == 401


def test_revoking_someone_elses_token_is_refused(http, server):
    tokens = code_flow(http, server.url, BASIC_CLIENT)

    resp = http.post(
        f"{server.url}/revoke",
        data={
            "token": tokens["access_token"],
            "client_id": POST_CLIENT.client_id,
            "client_secret": POST_CLIENT.client_secret,
        },
    )

    assert resp.status_code == 400
    assert me(http, server.url, tokens["access_token"]).status_code == 200


def test_revoking_an_unknown_token_is_ok(http, server):
    resp = http.post(
        f"{server.url}/revoke",
        data={"token": "nope"},
        auth=(BASIC_CLIENT.client_id, BASIC_CLIENT.client_secret),
    )

    assert resp.status_code == 200


# -- state controls -----------------------------------------------------------------------


def test_add_client_at_runtime(http, server, provider):
    late = ClientSpec(client_id="late", client_secret="late-secret", redirect_uris=[REDIRECT_URI])
    provider.add_client(late)

    assert code_flow(http, server.url, late)["access_token"]


def test_reset_forgets_tokens_and_counters(http, server, provider):
    tokens = code_flow(http, server.url, BASIC_CLIENT)
    provider.add_client(ClientSpec(client_id="temp", client_secret="s"))

    provider.reset()

    assert me(http, server.url, tokens["access_token"]).status_code == 401
    assert provider.get_client("temp") is None
    assert provider.get_client("basic-client") is not None
    assert provider.stats["code_exchanges"] == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"client_id": "c"},
        {"client_id": "c", "client_secret": "s", "token_endpoint_auth_method": "none"},
        {"client_id": "c", "grant_types": ["password"], "client_secret": "s"},
    ],
)
def test_client_spec_rejects_inconsistent_registrations(kwargs):
    with pytest.raises(ValueError):
        ClientSpec(**kwargs)


# -- mounted under a prefix ---------------------------------------------------------------


def test_works_mounted_under_a_prefix(http, provider_app):
    mounted = DispatcherMiddleware(NotFound(), {"/demo-provider": provider_app})
    with serve_in_thread(mounted) as root:
        base = f"{root.url}/demo-provider"
        _, challenge = pkce_pair()
        page = consent_page(http, base, client_id="basic-client", challenge=challenge)
        action = form_action(page)
        denied = decide(http, root.url, page, decision="deny")
        refused = consent_page(http, base, client_id="basic-client")
        tokens = code_flow(http, base, BASIC_CLIENT)
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        who = http.get(f"{base}/api/me", headers=headers).json()
        echo = http.get(f"{base}/api/echo", headers=headers).json()
        items = http.get(f"{base}/api/items", headers=headers).json()
        unprefixed = http.get(f"{root.url}/authorize")

    assert action.startswith("/demo-provider/authorize?")
    assert denied["error"] == "access_denied"
    assert refused.headers["Location"].startswith(REDIRECT_URI + "?error=invalid_request")
    assert who["username"] == "alice"
    assert echo["path"] == "/demo-provider/api/echo"
    assert items["next"] == f"{base}/api/items?page=2"
    assert unprefixed.status_code == 404
