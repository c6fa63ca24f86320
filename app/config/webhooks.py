"""Webhook settings: delivery attempts and retries, and how many sends an admin may ask for."""

from __future__ import annotations

from typing import Any

from app.config.rules import require_positive, require_rates

DEFAULTS: dict[str, Any] = {
    # Outbound webhooks: attempts per delivery, and the first retry's wait (doubling after).
    "WEBHOOK_MAX_ATTEMPTS": 8,
    "WEBHOOK_RETRY_BASE_S": 30.0,
    # Test events and redeliveries an admin may ask for in a moving window (the `limits`
    # notation), per endpoint and per facility: each makes the server send a request out.
    "WEBHOOK_SENDS_PER_ENDPOINT": "10 per minute",
    "WEBHOOK_SENDS_PER_FACILITY": "100 per hour",
}


def validate(config: Any) -> None:
    """Refuse delivery settings and send rates that cannot work."""
    require_positive(config, ("WEBHOOK_MAX_ATTEMPTS", "WEBHOOK_RETRY_BASE_S"))
    require_rates(config, ("WEBHOOK_SENDS_PER_ENDPOINT", "WEBHOOK_SENDS_PER_FACILITY"))
