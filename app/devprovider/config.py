"""Configuration values for the development OAuth2 provider: clients, users, lifetimes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


@dataclass(frozen=True)
class ClientSpec:
    """One registered OAuth client, as an operator would register it at a provider."""

    client_id: str
    client_secret: str | None = None
    redirect_uris: list[str] = field(default_factory=list)
    grant_types: list[str] = field(default_factory=lambda: ["authorization_code", "refresh_token"])
    scope: str = "read write"
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"

    def __post_init__(self) -> None:
        unknown = set(self.grant_types) - set(GRANT_TYPES)
        if unknown:
            raise ValueError(f"unsupported grant types: {sorted(unknown)}")
        if self.token_endpoint_auth_method == "none":
            if self.client_secret:
                raise ValueError("a public client (auth method 'none') has no secret")
            if "client_credentials" in self.grant_types:
                raise ValueError("client_credentials needs a confidential client")
        elif not self.client_secret:
            raise ValueError(f"{self.token_endpoint_auth_method} needs a client_secret")


@dataclass
class ProviderConfig:
    """Everything a provider instance is started with; nothing is read from the environment."""

    access_token_lifetime: int = 3600
    rotate_refresh_tokens: bool = True
    require_pkce: bool = True
    clients: list[ClientSpec] = field(default_factory=list)
    users: list[str] = field(default_factory=lambda: ["alice", "bob"])
    api_keys: dict[str, str | None] = field(default_factory=dict)
    basic_users: dict[str, str] = field(default_factory=dict)
    # The verbs /token accepts; many real providers refuse GET.
    token_methods: tuple[str, ...] = ("POST", "GET")
    # Upper bounds that keep a test (or a demo user) from tying up the process.
    max_slow_seconds: float = 30.0
    max_big_bytes: int = 50 * 1024 * 1024
