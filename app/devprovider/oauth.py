"""Authlib glue: the authorization server, its grants, revocation and the resource protector."""

from __future__ import annotations

from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, OAuth2Request, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Flask, Request
from flask import request as flask_request

from .config import GRANT_TYPES
from .models import AuthorizationCode, Client, Token, User
from .state import Provider

SECRET_AUTH = ["client_secret_basic", "client_secret_post"]
ANY_AUTH = [*SECRET_AUTH, "none"]


class DevAuthorizationServer(AuthorizationServer):
    """Flask AuthorizationServer backed by the in-memory Provider."""

    def __init__(self, provider: Provider) -> None:
        super().__init__()
        self.provider = provider

    def query_client(self, client_id: str) -> Client | None:
        """Look a client up by id."""
        return self.provider.get_client(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Store an issued token and count the exchange that produced it."""
        user = request.user
        self.provider.save_token(
            Token(
                access_token=token["access_token"],
                refresh_token=token.get("refresh_token"),
                client_id=request.client.get_client_id(),
                username=user.username if user else None,
                scope=token.get("scope", ""),
                expires_in=int(token["expires_in"]),
            )
        )
        grant_type = request.payload.grant_type
        if grant_type == "authorization_code":
            self.provider.stats.increment("code_exchanges")
        elif grant_type == "refresh_token":
            self.provider.stats.increment("refreshes")

    def create_oauth2_request(self, request: Request | None) -> FlaskOAuth2Request:
        """Use the request handed in (a rebuilt GET token request) or the current one."""
        # Authlib's Flask server always reads flask.request; the GET verb of the token
        # endpoint hands in a rebuilt form POST instead, so honour the argument.
        return FlaskOAuth2Request(request if request is not None else flask_request)


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only; when required, every authorization request must carry it."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: grants.BaseGrant, redirect_uri: str) -> None:
        """Refuse a missing challenge (when required) or one without its S256 method."""
        data = grant.request.payload.data
        challenge = data.get("code_challenge")
        if self.required and not challenge:
            raise InvalidRequestError("Missing 'code_challenge'")
        if challenge and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """Code grant storing codes in the Provider; codes are single-use even under races."""

    TOKEN_ENDPOINT_AUTH_METHODS = ANY_AUTH

    @property
    def provider(self) -> Provider:
        """The Provider this grant works on."""
        return self.server.provider

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        """Store the code with the PKCE challenge of the request."""
        data = request.payload.data
        self.provider.save_code(
            AuthorizationCode(
                code=code,
                client_id=request.client.get_client_id(),
                username=request.user.username,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope or "",
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
            )
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        """Find a live code issued to this client."""
        return self.provider.find_code(code, client.get_client_id())

    def validate_token_request(self) -> None:
        """Validate (Authlib, including PKCE), then consume the code atomically."""
        super().validate_token_request()
        # Authlib looks the code up here and deletes it only after issuing tokens; two
        # concurrent exchanges would both pass. Claiming under the lock closes that gap.
        if not self.provider.claim_code(self.request.authorization_code):
            raise InvalidGrantError("Invalid 'code' in request.")

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Nothing left to do: validate_token_request already consumed the code."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User:
        """Return the user who approved the code."""
        return User(authorization_code.username)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """Refresh grant; with rotation, a refresh token works exactly once."""

    TOKEN_ENDPOINT_AUTH_METHODS = ANY_AUTH

    @property
    def provider(self) -> Provider:
        """The Provider this grant works on."""
        return self.server.provider

    @property
    def INCLUDE_NEW_REFRESH_TOKEN(self) -> bool:
        """Rotation issues a new refresh token with every refresh."""
        return self.provider.config.rotate_refresh_tokens

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        """Return the token record if its refresh token is still usable."""
        token = self.provider.find_refresh_token(refresh_token)
        if token is None or token.refresh_revoked:
            return None
        return token

    def validate_token_request(self) -> None:
        """Validate (Authlib), then claim the refresh token atomically."""
        super().validate_token_request()
        # Authlib checks the token here but revokes it only after issuing new ones, so
        # concurrent refreshes with one rotating token would all succeed. Claiming it under
        # the provider's lock lets exactly one through; the rest get invalid_grant.
        rotate = self.provider.config.rotate_refresh_tokens
        if not self.provider.claim_refresh_token(self.request.refresh_token, rotate=rotate):
            raise InvalidGrantError()

    def authenticate_user(self, refresh_token: Token) -> User | None:
        """Return the user the token was issued for."""
        return User(refresh_token.username) if refresh_token.username else None

    def revoke_old_credential(self, refresh_token: Token) -> None:
        """Nothing left to do: validate_token_request already used the token up."""


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    """Client credentials for confidential clients, by either secret method."""

    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_AUTH


class DevRevocationEndpoint(RevocationEndpoint):
    """RFC 7009 revocation of access or refresh tokens."""

    CLIENT_AUTH_METHODS = ANY_AUTH

    @property
    def provider(self) -> Provider:
        """The Provider this endpoint works on."""
        return self.server.provider

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        """Find a token by its access or refresh string, trying the hinted kind first."""
        finders = [self.provider.find_access_token, self.provider.find_refresh_token]
        if token_type_hint == "refresh_token":
            finders.reverse()
        for find in finders:
            token = find(token_string)
            if token is not None:
                return token
        return None

    def revoke_token(self, token: Token, request: OAuth2Request) -> None:
        """Revoking a refresh token also revokes its access token (RFC 7009 section 2.1)."""
        is_refresh = request.form["token"] == token.refresh_token
        self.provider.revoke(token, refresh=is_refresh)
        self.provider.stats.increment("revocations")


class DevBearerTokenValidator(BearerTokenValidator):
    """Bearer validation against the Provider's access tokens."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(realm="devprovider")
        self.provider = provider

    def authenticate_token(self, token_string: str) -> Token | None:
        """Return the token record for the presented string."""
        return self.provider.find_access_token(token_string)


def init_oauth(app: Flask, provider: Provider) -> tuple[DevAuthorizationServer, ResourceProtector]:
    """Build the authorization server and resource protector for an app."""
    lifetime = provider.config.access_token_lifetime
    app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = dict.fromkeys(GRANT_TYPES, lifetime)

    server = DevAuthorizationServer(provider)
    server.init_app(app)
    server.register_grant(
        AuthorizationCodeGrant, [S256CodeChallenge(required=provider.config.require_pkce)]
    )
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(DevRevocationEndpoint)

    protector = ResourceProtector()
    protector.register_token_validator(DevBearerTokenValidator(provider))
    return server, protector
