"""In-memory records (client, user, code, token) shaped as Authlib's model mixins expect."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list

from .config import ClientSpec

# Codes live briefly, as RFC 6749 section 4.1.2 recommends (at most 10 minutes).
CODE_LIFETIME = 600


@dataclass(frozen=True)
class User:
    """A resource owner of the dev provider; only a name."""

    username: str


class Client(ClientMixin):
    """A registered client, backed by its ClientSpec."""

    def __init__(self, spec: ClientSpec) -> None:
        self.spec = spec
        self.client_id = spec.client_id

    def get_client_id(self) -> str:
        """Return the client id."""
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        """Return the first registered redirect URI."""
        return self.spec.redirect_uris[0] if self.spec.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        """Keep the requested scopes this client may have; no request means all of them."""
        allowed = scope_to_list(self.spec.scope) or []
        if not scope:
            return list_to_scope(allowed) or ""
        return list_to_scope([s for s in scope_to_list(scope) if s in allowed]) or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Redirect URIs must match a registered one exactly."""
        return redirect_uri in self.spec.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        """Compare the secret in constant time."""
        expected = self.spec.client_secret
        return expected is not None and secrets.compare_digest(expected, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """A client authenticates one way only, at every endpoint."""
        return method == self.spec.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        """Only the code flow is offered."""
        return response_type == "code" and "authorization_code" in self.spec.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        """Grant types are the ones registered for the client."""
        return grant_type in self.spec.grant_types


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    """An issued authorization code with its PKCE challenge."""

    code: str
    client_id: str
    username: str
    redirect_uri: str | None
    scope: str
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    expires_at: float = field(default_factory=lambda: time.time() + CODE_LIFETIME)

    def get_redirect_uri(self) -> str | None:
        """Return the redirect URI the code was issued for."""
        return self.redirect_uri

    def get_scope(self) -> str:
        """Return the granted scope."""
        return self.scope

    def is_expired(self) -> bool:
        """True once the code is too old to exchange."""
        return time.time() >= self.expires_at


@dataclass
class Token(TokenMixin):
    """An access token and, maybe, its refresh token."""

    access_token: str
    client_id: str
    username: str | None
    scope: str
    expires_in: int
    refresh_token: str | None = None
    issued_at: float = field(default_factory=time.time)
    expires_at: float = 0.0
    access_revoked: bool = False
    refresh_revoked: bool = False

    def __post_init__(self) -> None:
        if not self.expires_at:
            self.expires_at = self.issued_at + self.expires_in

    def check_client(self, client: ClientMixin) -> bool:
        """True if the token was issued to this client."""
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        """Return the granted scope."""
        return self.scope

    def get_expires_in(self) -> int:
        """Return the lifetime the token was issued with."""
        return self.expires_in

    def is_expired(self) -> bool:
        """True once the access token is past its expiry."""
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        """True if the access token was revoked."""
        return self.access_revoked
