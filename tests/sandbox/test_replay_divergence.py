"""A resumed run that does not retrace its steps ends `replay_diverged`, said in words."""

from __future__ import annotations

from sandbox import FAILED, PARKED, REPLAY_DIVERGED, SUCCEEDED, Executor
from tests.sandbox.replaying import LIMITS, Host, stored

CLOCK_IN_SECOND_CALL = """
import time
integrations.get('svc', '/first')
integrations.get('svc', '/second', params={'at': time.time_ns()})
integrations.get('svc', '/third')
result = 'ok'
"""


def test_a_call_that_depends_on_a_different_clock_reading_diverges(executor: Executor) -> None:
    parked = executor.run(CLOCK_IN_SECOND_CALL, limits=LIMITS, on_call=Host(park_at={3}))
    assert parked.status == PARKED and parked.journal is not None
    # Replayed as journalled, the clock-dependent call matches.
    same = executor.run(
        CLOCK_IN_SECOND_CALL,
        limits=LIMITS,
        on_call=Host(park_at=set()),
        journal=stored(parked.journal),
    )
    assert same.status == SUCCEEDED, same.to_dict()
    # A clock that reads differently on resume makes the second call differ: replay_diverged.
    journal = stored(parked.journal)
    journal.values = [["time", journal.values[0][1] + 1]]
    host = Host(park_at=set())
    diverged = executor.run(CLOCK_IN_SECOND_CALL, limits=LIMITS, on_call=host, journal=journal)
    assert diverged.status == FAILED and diverged.error is not None
    assert diverged.error.code == REPLAY_DIVERGED
    assert diverged.error.message == (
        "the resumed run did not retrace its steps: call 2 was "
        "integrations.request('svc', 'GET', '/second') the first time too, "
        "but with different arguments"
    )
    assert host.asked == []
    assert diverged.journal is not None and len(diverged.journal) == 2


def test_an_edited_script_diverges_naming_both_calls(executor: Executor) -> None:
    source = "integrations.get('svc', '/a')\nintegrations.post('svc', '/b')\nresult = 1"
    parked = executor.run(source, limits=LIMITS, on_call=Host(park_at={2}))
    edited = source.replace("post('svc', '/b')", "get('svc', '/c')").replace("'/a'", "'/z'")
    diverged = executor.run(
        edited, limits=LIMITS, on_call=Host(park_at=set()), journal=stored(parked.journal)
    )
    assert diverged.error is not None and diverged.error.code == REPLAY_DIVERGED
    assert diverged.error.message == (
        "the resumed run did not retrace its steps: call 1 was "
        "integrations.request('svc', 'GET', '/a') the first time, "
        "now integrations.request('svc', 'GET', '/z')"
    )


def test_reading_a_different_kind_of_value_diverges(executor: Executor) -> None:
    source = "import time\nt = time.time()\nintegrations.get('svc', '/a')\nresult = 1"
    parked = executor.run(source, limits=LIMITS, on_call=Host(park_at={1}))
    edited = "import random\nt = random.random()\nintegrations.get('svc', '/a')\nresult = 1"
    diverged = executor.run(
        edited, limits=LIMITS, on_call=Host(park_at=set()), journal=stored(parked.journal)
    )
    assert diverged.error is not None and diverged.error.code == REPLAY_DIVERGED
    assert "seeded a random generator where the first run read the clock" in (
        diverged.error.message
    )
    assert diverged.error.line == 1  # importing `random` seeds the run's generator


def test_catching_the_divergence_does_not_hide_it(executor: Executor) -> None:
    source = "import time\nt = time.time()\nintegrations.get('svc', '/a')\nresult = 1"
    parked = executor.run(source, limits=LIMITS, on_call=Host(park_at={1}))
    sneaky = (
        "import uuid\ntry:\n    uuid.uuid4()\nexcept:\n    pass\n"
        "integrations.get('svc', '/a')\nresult = 1"
    )
    host = Host(park_at=set())
    diverged = executor.run(sneaky, limits=LIMITS, on_call=host, journal=stored(parked.journal))
    assert diverged.error is not None and diverged.error.code == REPLAY_DIVERGED
    assert host.asked == []


def test_a_resumed_run_that_ends_early_diverges(executor: Executor) -> None:
    source = "x = input\nintegrations.get('svc', '/a')\nintegrations.get('svc', '/b')\nresult = 1"
    parked = executor.run(source, limits=LIMITS, on_call=Host(park_at={2}))
    ends = "result = 2"
    diverged = executor.run(
        ends, limits=LIMITS, on_call=Host(park_at=set()), journal=stored(parked.journal)
    )
    assert diverged.error is not None and diverged.error.code == REPLAY_DIVERGED
    assert "ended after 0 integration calls, but the first run made 1" in diverged.error.message
