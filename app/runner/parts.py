"""The parts every RunQueue drives runs with, built once per process (app.extensions): the
embedded queue, the Celery queue and its worker side take them as one value."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.lifecycle import Lifecycle
from app.runner.caps import Caps
from app.runner.driver import RunDriver
from app.runner.heartbeat import Heartbeat
from app.services.grants import GrantCoordinator
from app.services.webhook_events import WebhookSender


@dataclass(frozen=True)
class EngineParts:
    """The run engine's parts a queue needs: who drives a run, who moves its status, who
    answers its prompts, where it reads runs, its beat, the caps, the webhook sender."""

    driver: RunDriver
    lifecycle: Lifecycle
    grants: GrantCoordinator
    session_factory: Callable[[], Session]
    heartbeat: Heartbeat
    caps: Caps
    webhooks: WebhookSender | None = None
