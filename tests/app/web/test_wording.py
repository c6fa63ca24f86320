"""Run errors in words: what a member reads depends on why a call had no account."""

from __future__ import annotations

import pytest

from app.models.schedules import SKIP_REASONS
from app.web.wording import (
    ADMIN_REASONS,
    SETTINGS_PLACE,
    SKIP_WORDS,
    WORDS_BY_REASON,
    delivery_in_words,
    error_in_words,
    restates_code,
    skip_in_words,
)


@pytest.mark.parametrize("reason", sorted(ADMIN_REASONS))
def test_what_only_an_admin_can_fix_sends_the_member_to_an_admin(reason: str) -> None:
    words = error_in_words("no_integration_grant", "GitHub", reason)
    assert "Ask an admin" in words and "GitHub" in words
    assert "Connect your account" not in words


@pytest.mark.parametrize("reason", [None, "missing", "needs_reauth", "not_interactive",
                                    "refused", "expired", "too_many_prompts"])
def test_a_members_own_sign_in_is_theirs_to_give(reason: str | None) -> None:
    words = error_in_words("no_integration_grant", "GitHub", reason)
    assert "GitHub" in words and "sign in" in words.replace("sign-in", "sign in")
    assert "admin" not in words


def test_an_unknown_reason_reads_as_the_code_alone() -> None:
    assert error_in_words("no_integration_grant", "GitHub", "made_up") == error_in_words(
        "no_integration_grant", "GitHub")
    assert error_in_words("timeout", None, "refused") == error_in_words("timeout")


@pytest.mark.parametrize(("code", "message", "said"), [
    ("cancelled", "the run was cancelled", True),
    ("output_limit", "Output limit reached", True),
    ("timeout", "the script ran longer than 5 s", False),
    ("script_error", "ValueError: nope", False),
    ("cancelled", None, False),
    (None, "the run was cancelled", False),
])
def test_a_message_saying_its_code_is_shown_without_it(
    code: str | None, message: str | None, said: bool
) -> None:
    """The run page shows such a message alone ("cancelled the run was cancelled")."""
    assert restates_code(code, message) is said



@pytest.mark.parametrize("reason", sorted({r for _, r in WORDS_BY_REASON} | {"missing"}))
def test_only_what_a_member_can_fix_names_their_settings(reason: str) -> None:
    """Pages link the place where the words name it: never for what only an admin can fix."""
    words = error_in_words("no_integration_grant", "GitHub", reason)
    if reason in ADMIN_REASONS:
        assert SETTINGS_PLACE not in words
    elif reason in {"missing", "refused", "not_interactive"}:
        assert SETTINGS_PLACE in words


@pytest.mark.parametrize(("status", "attempts", "allowed", "code", "said"), [
    ("pending", 0, 8, None, "not tried yet"),
    ("retrying", 1, 8, 503, "failed once (HTTP 503); attempt 2 of 8"),
    ("retrying", 2, 8, None, "failed twice (no answer); attempt 3 of 8"),
    ("retrying", 3, 8, 500, "failed 3 times (HTTP 500); attempt 4 of 8"),
    ("delivered", 1, 8, 200, "(HTTP 200)"),
    ("delivered", 3, 8, 204, "on attempt 3 (HTTP 204)"),
    ("failed", 8, 8, 503, "after 8 attempts (HTTP 503)"),
    ("failed", 8, 8, None, "after 8 attempts (no answer)"),
    ("failed", 1, 1, 410, "(HTTP 410)"),
])
def test_a_webhook_delivery_in_words(
    status: str, attempts: int, allowed: int, code: int | None, said: str
) -> None:
    # Beside the status on the Management page: "pending" alone read as if nothing had been
    # tried, and a retry did not say how it went.
    assert delivery_in_words(
        status=status, attempts=attempts, allowed=allowed, response_code=code) == said


def test_every_reason_a_schedule_skips_has_words() -> None:
    """One set of words for the Schedules page and the editor's panel (the panel had its
    own, which said them otherwise)."""
    assert sorted(SKIP_WORDS) == sorted(SKIP_REASONS)
    assert skip_in_words("script_deleted") == "the script was deleted"
    assert skip_in_words("made_up") == "made_up"  # stored by a newer server: as it is
