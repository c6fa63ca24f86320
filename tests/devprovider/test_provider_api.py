"""The dev provider's test API, behind Bearer tokens (/api) and keys or Basic (/keyapi)."""

import time

import pytest

from app.devprovider import ClientSpec, ProviderConfig

MACHINE = ClientSpec(
    client_id="machine",
    client_secret="machine-secret",
    grant_types=["client_credentials"],
    scope="read",
)


@pytest.fixture
def provider_config() -> ProviderConfig:
    return ProviderConfig(
        clients=[MACHINE],
        api_keys={"plain-key": None, "paired-key": "paired-secret"},
        basic_users={"carol": "carol-pw"},
        max_slow_seconds=0.2,
        max_big_bytes=1000,
    )


def new_token(http, base_url) -> str:
    resp = http.post(
        f"{base_url}/token",
        data={"grant_type": "client_credentials"},
        auth=(MACHINE.client_id, MACHINE.client_secret),
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


@pytest.fixture
def bearer(http, server) -> dict[str, str]:
    return {"Authorization": f"Bearer {new_token(http, server.url)}"}


# -- shared handlers, via /api ------------------------------------------------------------


def test_echo_returns_method_path_args_headers_and_json(http, server, bearer):
    resp = http.patch(
        f"{server.url}/api/echo/deeper?a=1&b=2&b=3",
        headers=bearer | {"X-Custom": "yes"},
        json={"hello": "world"},
    )

    assert resp.status_code == 200
    echo = resp.json()
    assert echo["method"] == "PATCH"
    assert echo["path"] == "/api/echo/deeper"
    assert echo["args"] == {"a": "1", "b": "2"}
    assert echo["args_list"] == {"a": ["1"], "b": ["2", "3"]}
    assert echo["headers"]["x-custom"] == "yes"
    assert echo["headers"]["authorization"] == bearer["Authorization"]
    assert echo["json"] == {"hello": "world"}


@pytest.mark.parametrize("code", [200, 201, 400, 403, 404, 500, 503])
def test_status_answers_the_given_code(http, server, bearer, code):
    resp = http.get(f"{server.url}/api/status/{code}", headers=bearer)

    assert resp.status_code == code
    assert resp.json() == {"status": code}


def test_status_204_has_no_body(http, server, bearer):
    resp = http.get(f"{server.url}/api/status/204", headers=bearer)

    assert resp.status_code == 204
    assert resp.content == b""


def test_slow_sleeps_up_to_the_cap(http, server, bearer):
    started = time.monotonic()
    resp = http.get(f"{server.url}/api/slow", params={"seconds": 100}, headers=bearer)

    assert resp.json() == {"slept": 0.2}
    assert time.monotonic() - started >= 0.2


def test_ratelimit_once_per_token_then_ok(http, server, bearer):
    url = f"{server.url}/api/ratelimit?retry_after=7"

    first = http.get(url, headers=bearer)
    second = http.get(url, headers=bearer)
    other_token = http.get(url, headers={"Authorization": f"Bearer {new_token(http, server.url)}"})

    assert first.status_code == 429
    assert first.headers["Retry-After"] == "7"
    assert second.status_code == 200
    assert other_token.status_code == 429


def test_redirect(http, server, bearer):
    resp = http.get(
        f"{server.url}/api/redirect",
        params={"to": "http://example.invalid/x"},
        headers=bearer,
        allow_redirects=False,
    )

    assert resp.status_code == 302
    assert resp.headers["Location"] == "http://example.invalid/x"


def test_big_returns_n_bytes_capped(http, server, bearer):
    small = http.get(f"{server.url}/api/big?bytes=10", headers=bearer)
    capped = http.get(f"{server.url}/api/big?bytes=99999", headers=bearer)

    assert small.content == b"x" * 10
    assert len(capped.content) == 1000


def test_items_are_paged_with_a_next_link(http, server, bearer):
    pages = []
    url = f"{server.url}/api/items"
    while url:
        body = http.get(url, headers=bearer).json()
        pages.append(body)
        url = body["next"]

    ids = [item["id"] for page in pages for item in page["items"]]
    assert ids == list(range(1, 13))
    assert [p["page"] for p in pages] == [1, 2, 3]
    assert pages[-1]["next_page"] is None


def test_api_calls_are_counted(http, server, provider, bearer):
    http.get(f"{server.url}/api/me", headers=bearer)
    http.get(f"{server.url}/api/me")
    http.get(f"{server.url}/keyapi/me", headers={"X-API-Key": "plain-key"})

    assert provider.stats["api_calls"] == 2


# -- /keyapi credentials ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"headers": {"X-API-Key": "plain-key"}}, ("api_key", None)),
        ({"params": {"api_key": "plain-key"}}, ("api_key", None)),
        ({"auth": ("carol", "carol-pw")}, ("basic", "carol")),
        ({"auth": ("plain-key", "X")}, ("api_key", None)),
        (
            {"headers": {"X-API-Key": "paired-key", "X-API-Secret": "paired-secret"}},
            ("api_key", None),
        ),
        (
            {"auth": ("paired-key", "X"), "headers": {"X-API-Secret": "paired-secret"}},
            ("api_key", None),
        ),
    ],
    ids=["header", "query", "basic-user", "basic-key", "key-and-secret", "basic-key-and-secret"],
)
def test_keyapi_accepts_each_credential_form(http, server, kwargs, expected):
    resp = http.get(f"{server.url}/keyapi/me", **kwargs)

    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["auth"], body["username"]) == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"headers": {"X-API-Key": "wrong-key"}},
        {"params": {"api_key": "wrong-key"}},
        {"auth": ("carol", "wrong-pw")},
        {"auth": ("wrong-key", "X")},
        {"headers": {"X-API-Key": "paired-key"}},
        {"headers": {"X-API-Key": "paired-key", "X-API-Secret": "wrong"}},
        {"headers": {"Authorization": "Bearer plain-key"}},
        {},
    ],
    ids=[
        "header",
        "query",
        "basic-password",
        "basic-key",
        "secret-missing",
        "secret-wrong",
        "bearer",
        "nothing",
    ],
)
def test_keyapi_refuses_wrong_or_missing_credentials(http, server, provider, kwargs):
    resp = http.get(f"{server.url}/keyapi/me", **kwargs)

    assert resp.status_code == 401
    assert resp.json()["error"] in ("invalid_credentials", "missing_credentials")
    assert resp.headers["WWW-Authenticate"].startswith("Basic ")
    assert provider.stats["api_calls"] == 0


def test_keyapi_serves_the_same_handlers(http, server):
    headers = {"X-API-Key": "plain-key"}

    echo = http.post(f"{server.url}/keyapi/echo?q=1", headers=headers, data={"f": "v"}).json()
    limited = http.get(f"{server.url}/keyapi/ratelimit?retry_after=3", headers=headers)
    again = http.get(f"{server.url}/keyapi/ratelimit?retry_after=3", headers=headers)

    assert echo["path"] == "/keyapi/echo"
    assert echo["headers"]["x-api-key"] == "plain-key"
    assert echo["form"] == {"f": ["v"]}
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "3")
    assert again.status_code == 200


def test_bearer_tokens_do_not_open_keyapi_and_keys_do_not_open_api(http, server, bearer):
    assert http.get(f"{server.url}/keyapi/me", headers=bearer).status_code == 401
    assert http.get(f"{server.url}/api/me", headers={"X-API-Key": "plain-key"}).status_code == 401
