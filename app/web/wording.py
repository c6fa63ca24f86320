"""Run errors in words for members (scripters also get the code, line and traceback)."""

from __future__ import annotations

# One sentence per error code; `{service}` is the integration the failing call used.
WORDS: dict[str, str] = {
    "no_integration_grant": "{service} needs your sign-in. Connect your account in "
    "Settings → Integrations, then run the script again.",
    "unknown_integration": "This script uses a service this facility has not set up. "
    "Tell a scripter or admin.",
    "forbidden_destination": "{service} refused a request this script is not allowed to make. "
    "Tell a scripter.",
    "integration_timeout": "{service} did not answer in time. Try again in a moment.",
    "integration_unavailable": "{service} could not be reached. Try again later.",
    "rate_limited": "{service} asked to slow down. Try again in a few minutes.",
    "quota_exceeded": "This facility used its monthly quota of integration calls. "
    "Ask an admin to raise it.",
    "timeout": "The script took too long and was stopped.",
    "cpu_limit": "The script used too much computing time and was stopped.",
    "memory_limit": "The script used too much memory and was stopped.",
    "output_limit": "The script printed or returned too much and was stopped.",
    "call_limit": "The script made too many integration calls and was stopped.",
    "cancelled": "The run was stopped.",
    "interrupted": "The server restarted while this ran. Run it again.",
}
FALLBACK = "The script failed. Tell a scripter what you were doing; they can see the details."


def error_in_words(code: str | None, service: str | None = None) -> str:
    """A sentence a member can act on, for a run's error code."""
    return WORDS.get(code or "", FALLBACK).format(service=service or "A service")
