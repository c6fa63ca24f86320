"""A real OAuth2 authorization server and test API on loopback, built from Authlib.

Used by the test suite as the provider Scriptbox's OAuth client talks to, and by
`scriptbox serve --demo` so newcomers can sign in offline. Self-contained: this package
imports nothing else from `app` (tests/devprovider checks it). State lives in memory.
"""

from .config import ClientSpec, ProviderConfig
from .factory import create_provider_app
from .serving import RunningServer, serve_in_thread
from .state import Provider, Stats, provider_of
from .testing import answer_consent

__all__ = [
    "ClientSpec",
    "Provider",
    "ProviderConfig",
    "RunningServer",
    "Stats",
    "answer_consent",
    "create_provider_app",
    "provider_of",
    "serve_in_thread",
]
