"""OAuth2 with requests-oauthlib: authorization URLs (state + PKCE S256), code exchange,
client credentials, refresh and revocation, per an integration's settings.

Token requests go by POST or GET as configured, with client authentication by Basic
header or in the body. Provider errors come back as OAuthProviderError with the
provider's own error code (`invalid_grant`, `invalid_client`, …). Every call to the token
or revocation endpoint ends within its timeout in all and reads at most
ENDPOINT_ANSWER_MAX_BYTES of the answer (`invalid_response` past it).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error, WebApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from app.integrations import body_caps, deadlines, transport
from app.integrations.destinations import fill_parameters
from app.integrations.redaction import Redactor
from sandbox import size_in_words

# Providers may grant fewer or other scopes than asked; that is their call, not an error.
os.environ.setdefault("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")

# The OAuthProviderError code for a token URL whose address the server may not dial.
ADDRESS_NOT_ALLOWED = "address_not_allowed"
# The OAuthProviderError code for an endpoint that did not answer (unreachable, too slow).
NOT_REACHED = "temporarily_unavailable"
# A token or revocation answer is a little JSON; more is a broken or hostile endpoint.
ENDPOINT_ANSWER_MAX_BYTES = body_caps.MIB

_insecure_lock = threading.Lock()
_insecure_users = 0


@dataclass(frozen=True)
class OAuthSettings:
    """The OAuth fields of an integration, with connection parameters filled in."""

    authorization_url: str
    token_url: str
    revoke_url: str | None
    scopes: tuple[str, ...]
    scope_separator: str
    pkce: bool
    token_request_method: str
    token_auth_method: str
    authorization_params: Mapping[str, str]

    @classmethod
    def of(cls, integration: Any, parameters: Mapping[str, str] | None = None) -> OAuthSettings:
        """Settings from an Integration row; `{parameter}` placeholders filled."""
        params = parameters or {}

        def fill(url: str | None) -> str:
            return fill_parameters(url, params) if url else ""

        return cls(
            authorization_url=fill(integration.authorization_url),
            token_url=fill(integration.token_url),
            revoke_url=fill(integration.revoke_url) or None,
            scopes=tuple(integration.scopes or ()),
            scope_separator=integration.scope_separator or " ",
            pkce=bool(integration.pkce),
            token_request_method=(integration.token_request_method or "POST").upper(),
            token_auth_method=integration.token_auth_method or "client_secret_post",
            authorization_params=dict(integration.authorization_params or {}),
        )


class OAuthProviderError(Exception):
    """The provider refused a token request; `.error` is its OAuth error code."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description


def _sent(client_id: str, secrets: Iterable[str | None]) -> list[str]:
    """The secrets a token or revocation request carries, for taking them out of what the
    provider says back: each one, and the client's Basic pair when a secret is among them.

    A provider's words go on to people (Test connection, a failed disconnect): one that
    echoes the request must not hand the client secret to a member, nor the write-only
    secret back to an admin.
    """
    sent = [secret for secret in secrets if secret]
    sent.extend(f"{client_id}:{secret}" for secret in list(sent))
    return sent


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def _transport(url: str) -> Iterator[None]:
    """Let oauthlib use plain http for loopback providers only (tests, the demo).

    oauthlib reads a process-wide variable; it is set only while a loopback call runs
    (counted, so concurrent calls do not unset it for each other) and never for real
    providers, whose URLs the catalog and the integration validator require to be https.
    """
    global _insecure_users
    if not url.startswith("http://") or not _is_loopback(url):
        yield
        return
    with _insecure_lock:
        _insecure_users += 1
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    try:
        yield
    finally:
        with _insecure_lock:
            _insecure_users -= 1
            if not _insecure_users:
                os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)


def _session(client: Any, http: requests.Session | None, **kwargs: Any) -> OAuth2Session:
    session = OAuth2Session(client=client, **kwargs)
    # Through the guarded transport like script calls: the client secret, refresh token
    # and PKCE verifier go only to addresses the server may dial, never via a proxy.
    session.trust_env = False
    session.max_redirects = 0  # a token endpoint's redirect must not carry the secret along
    session.adapters = (http or transport.guarded_session()).adapters
    return session


def _auth_kwargs(settings: OAuthSettings, client_id: str, secret: str | None) -> dict[str, Any]:
    if settings.token_auth_method == "client_secret_basic" and secret is not None:
        return {"auth": HTTPBasicAuth(client_id, secret), "include_client_id": False}
    kwargs: dict[str, Any] = {"include_client_id": True}
    if secret is not None:
        kwargs["client_secret"] = secret
    return kwargs


def _scope(settings: OAuthSettings) -> str | None:
    return settings.scope_separator.join(settings.scopes) if settings.scopes else None


def authorization_url(
    settings: OAuthSettings,
    *,
    client_id: str,
    redirect_uri: str,
    state: str,
    code_verifier: str | None,
) -> str:
    """The URL to send the user to; PKCE S256 when a verifier is given."""
    client = WebApplicationClient(client_id)
    extra: dict[str, Any] = dict(settings.authorization_params)
    if code_verifier is not None:
        extra["code_challenge"] = client.create_code_challenge(code_verifier, "S256")
        extra["code_challenge_method"] = "S256"
    with _transport(settings.authorization_url):
        session = _session(
            client, None, redirect_uri=redirect_uri, state=state, scope=_scope(settings)
        )
        url, _ = session.authorization_url(settings.authorization_url, **extra)
    return str(url)


@contextlib.contextmanager
def _endpoint_call(endpoint: str, timeout: float) -> Iterator[None]:
    """A request to the token or revocation `endpoint` (named so in the errors): within
    `timeout` in all, not per read (a trickling answer is cut off), and read up to
    ENDPOINT_ANSWER_MAX_BYTES (a flood is not held in memory); what stops it comes out as
    OAuthProviderError."""
    try:
        with deadlines.Deadline(timeout), body_caps.BodyCap(ENDPOINT_ANSWER_MAX_BYTES):
            yield
    except deadlines.DeadlinePassed:
        raise OAuthProviderError(
            NOT_REACHED, f"the {endpoint} did not answer within {timeout:g} s"
        ) from None
    except body_caps.AnswerTooLarge as exc:
        raise OAuthProviderError(
            "invalid_response",
            f"the {endpoint}'s answer is larger than {size_in_words(exc.limit)}",
        ) from None
    except requests.RequestException as exc:
        if transport.refused_address(exc) is not None:
            raise OAuthProviderError(
                ADDRESS_NOT_ALLOWED, f"the {endpoint}'s address is not allowed"
            ) from None
        raise OAuthProviderError(
            NOT_REACHED,
            f"the {endpoint} could not be reached ({type(exc).__name__})",
        ) from None


def _token_call(
    settings: OAuthSettings, call: Any, timeout: float, sent: list[str]
) -> dict[str, Any]:
    """Make the token request `call`; a refusal's words without the secrets `sent`."""
    said = Redactor(sent).text
    try:
        with _transport(settings.token_url), _endpoint_call("token endpoint", timeout):
            token = call()
    except OAuth2Error as exc:
        raise OAuthProviderError(
            said(exc.error or "invalid_request"), said(exc.description or "")
        ) from None
    except ValueError as exc:  # oauthlib: a token answer without access_token, bad JSON…
        raise OAuthProviderError("invalid_response", said(str(exc))) from None
    return dict(token)


def exchange_code(
    settings: OAuthSettings,
    *,
    client_id: str,
    client_secret: str | None,
    redirect_uri: str,
    code: str,
    code_verifier: str | None,
    http: requests.Session | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Trade an authorization code for tokens."""
    session = _session(WebApplicationClient(client_id), http, redirect_uri=redirect_uri)
    kwargs = _auth_kwargs(settings, client_id, client_secret)
    if code_verifier is not None:
        kwargs["code_verifier"] = code_verifier
    return _token_call(
        settings,
        lambda: session.fetch_token(
            settings.token_url,
            code=code,
            method=settings.token_request_method,
            timeout=timeout,
            **kwargs,
        ),
        timeout,
        _sent(client_id, (client_secret, code, code_verifier)),
    )


def client_credentials_token(
    settings: OAuthSettings,
    *,
    client_id: str,
    client_secret: str | None,
    http: requests.Session | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """A token for the client itself (no user)."""
    session = _session(BackendApplicationClient(client_id), http)
    kwargs = _auth_kwargs(settings, client_id, client_secret)
    scope = _scope(settings)
    if scope:
        kwargs["scope"] = scope
    return _token_call(
        settings,
        lambda: session.fetch_token(
            settings.token_url,
            method=settings.token_request_method,
            timeout=timeout,
            **kwargs,
        ),
        timeout,
        _sent(client_id, (client_secret,)),
    )


def refresh_token(
    settings: OAuthSettings,
    *,
    client_id: str,
    client_secret: str | None,
    refresh_token: str,
    http: requests.Session | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """New tokens for a refresh token (which rotating providers replace)."""
    session = _session(WebApplicationClient(client_id), http)
    kwargs = _auth_kwargs(settings, client_id, client_secret)
    kwargs.pop("include_client_id", None)
    if "auth" not in kwargs:
        kwargs["client_id"] = client_id
    return _token_call(
        settings,
        lambda: session.refresh_token(
            settings.token_url,
            refresh_token=refresh_token,
            timeout=timeout,
            **kwargs,
        ),
        timeout,
        _sent(client_id, (client_secret, refresh_token)),
    )


def revoke(
    settings: OAuthSettings,
    *,
    client_id: str,
    client_secret: str | None,
    token: str,
    token_type_hint: str,
    http: requests.Session | None = None,
    timeout: float = 15.0,
) -> None:
    """Revoke a token at the revocation endpoint (RFC 7009); raise OAuthProviderError with
    the provider's answer when it refuses (`NOT_REACHED`: not reached)."""
    if not settings.revoke_url:
        return
    data = {"token": token, "token_type_hint": token_type_hint}
    auth = None
    if settings.token_auth_method == "client_secret_basic" and client_secret is not None:
        auth = HTTPBasicAuth(client_id, client_secret)
    else:
        data["client_id"] = client_id
        if client_secret is not None:
            data["client_secret"] = client_secret
    sender = http or transport.guarded_session()
    with _endpoint_call("revocation endpoint", timeout):
        response = sender.post(
            settings.revoke_url, data=data, auth=auth, timeout=timeout, allow_redirects=False
        )
    if response.status_code == 200:
        return
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    # Redacted before the raw answer is cut: a secret across the cut would show its start.
    said = Redactor(_sent(client_id, (client_secret, token))).text
    raise OAuthProviderError(
        said(str(answer.get("error") or f"http_{response.status_code}")),
        f"HTTP {response.status_code}: "
        + said(str(answer.get("error_description") or response.text))[:200].strip(),
    )
