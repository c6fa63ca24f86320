"""What a script gets back holds no credential: secrets the upstream reflects are redacted.

Every secret the server placed in a request is searched for in the answer's headers, body
and final URL, raw, URL-encoded and base64-encoded (as in a Basic header), and replaced by
`[redacted]`; credential query parameters are dropped from the URL altogether.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

REDACTED = "[redacted]"
# Shorter values are not searched for: redacting every "X" of an answer would garble it,
# and a secret that short protects nothing anyway.
MIN_SECRET_LENGTH = 4


class Redactor:
    """Replaces the given secrets, in every spelling an upstream may echo, by [redacted]."""

    def __init__(self, secrets: Iterable[str], *, credential_query: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) < MIN_SECRET_LENGTH:
                continue
            raw = secret.encode()
            forms.update(
                (
                    secret,
                    quote(secret, safe=""),
                    quote_plus(secret, safe=""),
                    quote(secret),
                    base64.b64encode(raw).decode(),
                    base64.urlsafe_b64encode(raw).decode(),
                    base64.b64encode(raw).decode().rstrip("="),
                )
            )
        # Longest first, so a secret's encoding is not half-replaced by a shorter secret.
        self._forms = sorted(forms, key=len, reverse=True)
        self._byte_forms = [form.encode() for form in self._forms]
        self._credential_query = frozenset(credential_query)

    def text(self, value: str) -> str:
        """The text with every secret replaced."""
        for form in self._forms:
            if form in value:
                value = value.replace(form, REDACTED)
        return value

    def content(self, value: bytes) -> bytes:
        """The body with every secret replaced."""
        redacted = REDACTED.encode()
        for form in self._byte_forms:
            if form in value:
                value = value.replace(form, redacted)
        return value

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Header values (and names) with every secret replaced."""
        return {self.text(name): self.text(value) for name, value in headers.items()}

    def url(self, url: str) -> str:
        """The URL without credential query parameters, other secrets replaced."""
        parts = urlsplit(url)
        pairs = [
            (name, value)
            for name, value in parse_qsl(parts.query, keep_blank_values=True)
            if name not in self._credential_query
        ]
        query = urlencode(pairs) if pairs else ""
        return self.text(urlunsplit((parts.scheme, parts.netloc, parts.path, query, "")))
