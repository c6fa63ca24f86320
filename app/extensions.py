"""The app's services, built once by the factory and injected (DESIGN §7, STYLE 15).

`init_app` is the composition root: it builds the vault, the event bus, the grant
signals, the run lifecycle, the grant coordinator, the broker, the run driver and the
run queue, wiring each into the next; the accessors below give them back, typed. The
embedded implementations serve `SCRIPTBOX_EXECUTOR=inprocess`; `celery` picks the Redis
bus and signals and the Celery queue (`app.distributed`), here and nowhere else.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import requests
from flask import Flask, current_app

from app import db
from app.config import ConfigError
from app.distributed.celery_queue import CeleryRunQueue
from app.distributed.celery_tasks import make_celery
from app.distributed.celery_worker import WorkerHooks
from app.distributed.pubsub import RedisListener
from app.distributed.redis_bus import RedisEventBus
from app.distributed.redis_quota import RedisCallCounter
from app.distributed.redis_signals import RedisGrantSignals
from app.distributed.sweep_turns import Outages, SweepTurns
from app.events import InMemoryEventBus
from app.integrations.broker import Broker, BrokerSettings
from app.integrations.call_context import GrantHook, not_interactive
from app.integrations.quota import CallCounter
from app.integrations.tokens import TokenManager
from app.integrations.transport import guarded_session
from app.integrations.vault import Vault, load_keys
from app.lifecycle import Lifecycle
from app.runner.caps import Caps
from app.runner.checks import sandbox_checker
from app.runner.driver import RunDriver, limits_from_config
from app.runner.heartbeat import Heartbeat
from app.runner.parts import EngineParts
from app.runner.store_calls import StoreCalls
from app.runner.threads import ThreadRunQueue
from app.sandboxes import executor
from app.seams import EventBus, GrantSignals, RunQueue
from app.services.failure_handlers import FailureHandlers
from app.services.grants import GrantCoordinator
from app.services.retention import Pruner
from app.services.schedule_firing import ScheduleFirer
from app.services.webhook_events import WebhookBus, WebhookEvents, WebhookSender
from app.services.webhook_sending import RetryPolicy
from app.signals import InMemoryGrantSignals

_start_lock = threading.Lock()


ShutdownHook = Callable[[float], object]


@dataclass(frozen=True)
class _Redis:
    """The process's Redis client and its one pub/sub listener (scale-out only)."""

    client: redis.Redis
    listener: RedisListener
    prefix: str


def init_app(app: Flask) -> None:
    """Build and wire the run engine (no threads and no sandbox start yet)."""
    factory = db.session_factory(app)
    vault = Vault(load_keys(app.config["SECRET_KEYS"], app.instance_path))
    shared: _Redis | None = None
    bus: EventBus
    signals: GrantSignals
    if app.config["EXECUTOR"] == "celery":
        client = redis_client(app)
        shared = _Redis(client, RedisListener(client), str(app.config["REDIS_PREFIX"]))
        bus = RedisEventBus(shared.client, shared.listener, prefix=shared.prefix)
        signals = RedisGrantSignals(shared.client, shared.listener, prefix=shared.prefix)
    else:
        bus = InMemoryEventBus()
        signals = InMemoryGrantSignals()
    # Events for the facility's webhooks; the queue that sends them is built below.
    events = WebhookEvents(
        session_factory=factory,
        public_url=lambda: str(app.config["PUBLIC_URL"]),
        deliver=lambda delivery_id: run_queue(app).deliver(delivery_id),
    )
    bus = WebhookBus(bus, events)
    webhooks = WebhookSender(
        session_factory=factory,
        vault=vault,
        http=lambda: outbound(app),
        policy=lambda: RetryPolicy(
            max_attempts=int(app.config["WEBHOOK_MAX_ATTEMPTS"]),
            base_s=float(app.config["WEBHOOK_RETRY_BASE_S"]),
        ),
    )
    lifecycle = Lifecycle(
        transaction=lambda: db.engine_of(app).begin(),
        statement=lambda: db.one_statement(app),
        bus=bus,
    )
    grants = GrantCoordinator(
        session_factory=factory,
        bus=bus,
        signals=signals,
        lifecycle=lifecycle,
        timeout_s=float(app.config["GRANT_TIMEOUT_S"]),
        max_pending_per_user=int(app.config["MAX_PENDING_GRANTS_PER_USER"]),
        park_after_s=float(app.config["PARK_AFTER_S"]),
        max_live_paused=int(app.config["MAX_LIVE_PAUSED"]),
    )
    grants.ask_remotely(events)
    broker_lock = threading.Lock()

    def broker() -> Broker:
        # Built on first use: the outbound transport reads PRIVATE_NETWORK_ALLOW then
        # (the demo adds its loopback provider after the app is created).
        with broker_lock:
            if "broker" not in app.extensions:
                app.extensions["broker"] = build_broker(
                    app,
                    vault=vault,
                    grant_hook=grants.request,
                    on_needs_reauth=events.account_needs_reauth,
                )
            built: Broker = app.extensions["broker"]
        return built

    # Which process and app drives a run; a forked Celery child takes its own.
    driver_id = f"{app.config['EXECUTOR']}-{socket.gethostname()}-{os.getpid()}-" + (
        secrets.token_hex(4)
    )
    heartbeat = Heartbeat(
        session_factory=factory,
        lifecycle=lifecycle,
        grants=grants,
        driver_id=driver_id,
        interval_s=float(app.config["HEARTBEAT_S"]),
        turn=None if shared is None else SweepTurns(
            shared.client, prefix=shared.prefix, interval_s=float(app.config["HEARTBEAT_S"])
        ),
        outages=None if shared is None else Outages(shared.client, prefix=shared.prefix),
    )
    driver = RunDriver(
        lifecycle=lifecycle,
        grants=grants,
        broker=broker,
        executor=lambda: executor(app),
        limits=lambda: limits_from_config(app.config),
        heartbeat=heartbeat,
        vault=vault,
        store=StoreCalls(
            session_factory=factory, read_session_factory=db.read_session_factory(app)
        ),
    )
    caps = Caps(
        per_user=int(app.config["MAX_RUNS_PER_USER"]),
        per_facility=int(app.config["MAX_RUNS_PER_FACILITY"]),
    )
    parts = EngineParts(driver=driver, lifecycle=lifecycle, grants=grants,
                        session_factory=factory, heartbeat=heartbeat, caps=caps,
                        webhooks=webhooks)
    queue: RunQueue
    if shared is not None:
        assert isinstance(signals, RedisGrantSignals)
        queue = CeleryRunQueue(
            parts,
            celery=make_celery(app.config["REDIS_URL"], prefix=shared.prefix),
            client=shared.client,
            listener=shared.listener,
            signals=signals,
            prefix=shared.prefix,
        )
    else:
        queue = ThreadRunQueue(parts)
    # Wherever a scheduled run ends failed for good, its schedule's on-failure script
    # starts: at its end, or when the firer drops the retry it was waiting for.
    handlers = FailureHandlers(
        session_factory=factory, submit=queue.submit,
        public_url=lambda: str(app.config["PUBLIC_URL"]),
        max_queued=int(app.config["MAX_QUEUED_RUNS_PER_USER"]),
    )
    lifecycle.on_end(handlers.on_end)
    # Due schedules fire on the beat's tick, after the queued runs were dispatched: their
    # runs are queued like any other (the caps apply) and handed to the same queue.
    schedules = ScheduleFirer(session_factory=factory, submit=queue.submit,
                              max_queued=int(app.config["MAX_QUEUED_RUNS_PER_USER"]),
                              retry_dropped=handlers.retry_dropped)
    heartbeat.on_tick(schedules.fire_due)
    pruner = Pruner(session_factory=factory, retention_days=app.config["RETENTION_DAYS"])
    heartbeat.on_tick(pruner.tick)
    app.extensions.update(
        vault=vault,
        bus=bus,
        signals=signals,
        lifecycle=lifecycle,
        grants=grants,
        driver=driver,
        heartbeat=heartbeat,
        run_queue=queue,
        schedule_firer=schedules,
        webhook_events=events,
        redis_listener=None if shared is None else shared.listener,
        # Publishing and the editor's readiness compile a source in a sandbox worker.
        source_checker=sandbox_checker(lambda: executor(app), app.config),
    )
    # In this order: runs finish or park (their pages still open), then pages are closed.
    on_shutdown(app, queue.shutdown)
    on_shutdown(app, lambda _timeout: bus.close_all())

    def close_broker(timeout: float) -> None:
        # After the runs: their last calls' rows are written, not lost with the process.
        built = app.extensions.get("broker")
        if built is not None:
            built.close(timeout)

    on_shutdown(app, close_broker)


def on_shutdown(app: Flask, hook: ShutdownHook) -> None:
    """Call hook(seconds_left) when the server stops gracefully; hooks run in order."""
    app.extensions.setdefault("shutdown_hooks", []).append(hook)


def shutdown(app: Flask, *, timeout: float) -> None:
    """Run the app's shutdown hooks within `timeout` seconds in all (the server calls this)."""
    deadline = time.monotonic() + timeout
    for hook in list(app.extensions.get("shutdown_hooks", ())):
        hook(max(0.0, deadline - time.monotonic()))


def worker_hooks(app: Flask) -> WorkerHooks:
    """What each forked Celery worker process redoes for itself before taking runs."""

    def after_fork() -> None:
        # The parent's pooled connections must not be shared with a child: drop them
        # without closing (the parent may still use its own).
        db.engine_of(app).dispose(close=False)
        executor(app)  # its own zygote and idle workers, ready before the first run

    return WorkerHooks(after_fork=after_fork)


def celery_queue(app: Flask | None = None) -> CeleryRunQueue:
    """The app's Celery run queue (SCRIPTBOX_EXECUTOR=celery only)."""
    found = run_queue(app)
    if not isinstance(found, CeleryRunQueue):
        raise ConfigError("this needs SCRIPTBOX_EXECUTOR=celery and SCRIPTBOX_REDIS_URL")
    return found


def build_broker(
    app: Flask,
    *,
    vault: Vault,
    grant_hook: GrantHook = not_interactive,
    clock: Callable[[], float] = time.perf_counter,
    on_needs_reauth: Callable[[int], None] | None = None,
) -> Broker:
    """A broker wired to the app's database and settings (the factory's, or a bench's)."""
    factory = db.session_factory(app)
    margin = int(app.config["REFRESH_MARGIN_S"])
    http = outbound(app)
    calls = None
    if app.config["REDIS_URL"]:  # every process counts the monthly quota in one place
        client, prefix = redis_client(app), str(app.config["REDIS_PREFIX"])

        def calls(local: CallCounter) -> CallCounter:
            return RedisCallCounter(client, factory, local=local, prefix=prefix)

    return Broker(
        session_factory=factory,
        read_session_factory=db.read_session_factory(app),
        vault=vault,
        tokens=TokenManager(
            session_factory=factory,
            vault=vault,
            margin_s=margin,
            http=http,
            on_needs_reauth=on_needs_reauth,
        ),
        http=http,
        settings=BrokerSettings(
            call_timeout_s=float(app.config["CALL_TIMEOUT_S"]),
            max_response_bytes=int(app.config["CALL_MAX_RESPONSE_BYTES"]),
            refresh_margin_s=margin,
        ),
        grant_hook=grant_hook,
        clock=clock,
        calls=calls,
    )


def redis_client(app: Flask) -> redis.Redis:
    """The process's Redis client (SCRIPTBOX_REDIS_URL), made on first use."""
    with _start_lock:
        client: redis.Redis | None = app.extensions.get("redis_client")
        if client is None:
            client = redis.Redis.from_url(app.config["REDIS_URL"])
            app.extensions["redis_client"] = client
    return client


def _get(app: Flask | None, name: str) -> Any:
    return (app or current_app).extensions[name]


def bus(app: Flask | None = None) -> EventBus:
    """The app's event bus."""
    found: EventBus = _get(app, "bus")
    return found


def grants(app: Flask | None = None) -> GrantCoordinator:
    """The app's grant coordinator."""
    found: GrantCoordinator = _get(app, "grants")
    return found


def webhook_events(app: Flask | None = None) -> WebhookEvents:
    """The events the facility's webhooks hear of from outside a run's transaction."""
    found: WebhookEvents = _get(app, "webhook_events")
    return found


def run_queue(app: Flask | None = None) -> RunQueue:
    """The app's run queue."""
    found: RunQueue = _get(app, "run_queue")
    return found


def heartbeat(app: Flask | None = None) -> Heartbeat:
    """This process's run heartbeat (started by `serve`, or by the first run)."""
    found: Heartbeat = _get(app, "heartbeat")
    return found


def schedule_firer(app: Flask | None = None) -> ScheduleFirer:
    """The app's schedule firer (the heartbeat's tick calls its `fire_due`)."""
    found: ScheduleFirer = _get(app, "schedule_firer")
    return found


def driver(app: Flask | None = None) -> RunDriver:
    """The app's run driver (runs a claimed run in the calling thread)."""
    found: RunDriver = _get(app, "driver")
    return found


def lifecycle(app: Flask | None = None) -> Lifecycle:
    """The app's run lifecycle verbs."""
    found: Lifecycle = _get(app, "lifecycle")
    return found


def vault(app: Flask | None = None) -> Vault:
    """The app's vault."""
    found: Vault = _get(app, "vault")
    return found


def outbound(app: Flask | None = None) -> requests.Session:
    """The app's one outbound HTTP transport (checks every dialled address), made on first use.

    Made lazily so the demo can add its own loopback address to PRIVATE_NETWORK_ALLOW
    after the app is created and before anything calls out.
    """
    target: Any = app or current_app
    with _start_lock:
        existing: requests.Session | None = target.extensions.get("outbound")
        if existing is None:
            existing = guarded_session(allow=target.config["PRIVATE_NETWORK_ALLOW"])
            target.extensions["outbound"] = existing
    return existing
