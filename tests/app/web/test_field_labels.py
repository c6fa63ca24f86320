"""Credential fields are labelled as people write them: "API key", not "Api key"."""

from __future__ import annotations

import pytest

from app.web import field_label


@pytest.mark.parametrize(
    ("name", "label"),
    [("api_key", "API key"), ("username", "Username"), ("client_id", "Client ID"),
     ("oauth_token", "OAuth token"), ("account_sid", "Account SID"), ("password", "Password")],
)
def test_field_labels(name: str, label: str) -> None:
    assert field_label(name) == label
