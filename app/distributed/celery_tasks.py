"""The Celery app and what both sides of the Celery queue share: task names, Redis markers.

A web process sends tasks and sets their markers (`celery_queue`); a worker process takes
the tasks and drops or sets the same markers (`celery_worker`). Delivery is configured
here:

- Early acks (`acks_late` off), a prefetch of one and `worker_disable_prefetch`: a task
  is taken only by a worker with a free process, and acknowledged when that process
  takes it. A run that already started may have called out, so it must
  never be redelivered: when its process dies, the heartbeat sweep ends it `interrupted`.
  (Late acks would also crash the worker on a Redis restart: Celery restores unacked
  messages and then acks the running task on the dead channel.) The visibility timeout
  then only matters for the messages Celery itself keeps unacked; it is set above any
  run's life.
"""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery

RUN_TASK = "scriptbox.run"
RESUME_TASK = "scriptbox.resume"
WEBHOOK_TASK = "scriptbox.webhook"
VISIBILITY_TIMEOUT_S = 3600
SENT_MARKER_S = 30  # a queued run whose message vanished is sent again this soon
HELD_MARKER_S = 3600  # "a cap held runs back": the beats dispatch anyway


def make_celery(redis_url: str, *, prefix: str = "scriptbox") -> Celery:
    """A Celery app on the Redis broker, configured for run tasks (no result backend)."""
    celery = Celery("scriptbox", broker=redis_url, set_as_current=False)
    celery.conf.update(
        # Everything under the installation's prefix: several installations (or test
        # clusters) may share one Redis without taking each other's runs.
        task_default_queue=f"{prefix}.runs",
        task_ignore_result=True,
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        # A worker takes a message only while one of its processes is free: with early
        # acks, a started task no longer counts against the prefetch, so a busy worker
        # would otherwise hold the next runs while another worker idles.
        worker_disable_prefetch=True,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
            "global_keyprefix": f"{prefix}:celery:",
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return celery


@dataclass(frozen=True)
class Markers:
    """The Redis keys of the queue's markers, under the installation's prefix."""

    prefix: str

    @property
    def held(self) -> str:
        """"A cap held runs back": taken by the next run to end, which dispatches then."""
        return f"{self.prefix}:held-back"

    def sent(self, task: str, run_id: str) -> str:
        """"A message carries this task for this id now": one message per run in flight."""
        return f"{self.prefix}:sent:{task}:{run_id}"
