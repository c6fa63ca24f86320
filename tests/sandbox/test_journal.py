"""Journal and replay (DESIGN §4 "Durable pauses"): a parked run resumes by replay.

Real workers throughout: a run parks when the host handler raises ParkRun, and a new
worker resumes it from the journal (serialized in between, as the app stores it).
"""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox import (
    FAILED,
    PARKED,
    REPLAY_DIVERGED,
    SUCCEEDED,
    TIMED_OUT,
    Executor,
    HostCall,
    HostCallError,
    Journal,
    JournalError,
    Limits,
    ParkRun,
    RunResult,
)
from sandbox.journal import MAX_VALUES, CallIdentity, JournalCall
from sandbox.protocol import ProtocolError
from sandbox.replay import Replay, ValuesOverflow

LIMITS = Limits(wall_time_s=10, cpu_time_s=5, memory_mb=128)


def response(text: str) -> dict[str, Any]:
    """The reply of a request call as the broker gives it."""
    return {"status": 200, "headers": {}, "body_b64": base64.b64encode(text.encode()).decode()}


class Host:
    """A host call handler that answers each path and parks at the listed live calls.

    `asked` lists every call the handler saw, so a test can check that journalled calls
    were not asked again.
    """

    def __init__(self, *, park_at: set[int]) -> None:
        self.park_at = park_at
        self.asked: list[str] = []
        self.output: list[str] = []

    def __call__(self, call: HostCall) -> Any:
        self.asked.append(call.args.get("path", call.op))
        if len(self.asked) in self.park_at:
            raise ParkRun()
        return response(f"reply {len(self.asked)} to {call.args.get('path')}")


def stored(journal: Journal | None) -> Journal:
    """The journal after the trip through storage (bytes), as the app resumes it."""
    assert journal is not None
    return Journal.from_bytes(journal.to_bytes())


def run_until_done(
    executor: Executor, source: str, host: Host, *, limits: Limits = LIMITS
) -> list[RunResult]:
    """Run, then resume after every park; return every outcome in order."""
    outcomes = [executor.run(source, limits=limits, on_call=host, on_output=host.output.append)]
    while outcomes[-1].status == PARKED:
        outcomes.append(
            executor.run(
                source,
                limits=limits,
                on_call=host,
                on_output=host.output.append,
                journal=stored(outcomes[-1].journal),
            )
        )
    return outcomes


def parked_then_resumed(executor: Executor, source: str) -> tuple[RunResult, RunResult]:
    """Park the run at its first call, resume it; return both outcomes."""
    host = Host(park_at={1})
    outcomes = run_until_done(executor, source, host)
    assert [o.status for o in outcomes] == [PARKED, SUCCEEDED], outcomes[-1].to_dict()
    return outcomes[0], outcomes[1]


# Each script records what it saw before the park (the parking call's reply comes after).
CLOCKS = """
import time, datetime
seen = [time.time(), time.time_ns(), time.monotonic(), time.monotonic_ns(),
        time.perf_counter(), time.perf_counter_ns(), time.strftime('%Y-%m-%d %H:%M:%S'),
        time.ctime(), list(time.gmtime()), list(time.localtime()),
        datetime.datetime.now().isoformat(), datetime.datetime.utcnow().isoformat(),
        datetime.datetime.now(datetime.timezone.utc).isoformat(),
        datetime.date.today().isoformat(), datetime.datetime.today().isoformat()]
integrations.get('svc', '/park')
result = seen
"""

RANDOMS = """
import random
first = [random.random(), random.randint(1, 10 ** 9), random.choice('abcdefghij'),
         random.sample(range(1000), 5), random.getrandbits(64)]
rng = random.Random()
own = [rng.random(), rng.randint(1, 10 ** 9)]
rng.seed()
reseeded = rng.random()
random.seed()
module_reseeded = random.random()
fixed = random.Random(42).random()
integrations.get('svc', '/park')
result = [first, own, reseeded, module_reseeded, fixed]
"""

UUIDS = """
import uuid
made = [str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid1()), uuid.uuid4().hex]
integrations.get('svc', '/park')
result = made
"""

# Enough strings that two hash seeds give the same order only by a vanishing chance.
SET_ORDER = """
words = {'w%d' % i for i in range(40)}
order = list(words)
keys = list({w: 1 for w in words})
integrations.get('svc', '/park')
result = {'set': order, 'after': list(words)}
"""


@pytest.mark.parametrize("source", [CLOCKS, RANDOMS, UUIDS], ids=["clocks", "random", "uuid"])
def test_values_seen_before_a_park_come_back_on_resume(executor: Executor, source: str) -> None:
    parked, resumed = parked_then_resumed(executor, source)
    fresh = executor.run(source, limits=LIMITS, on_call=Host(park_at=set()))
    assert fresh.status == SUCCEEDED, fresh.to_dict()
    assert parked.journal is not None and parked.journal.values
    # The resumed run saw exactly the first run's values, which a fresh run does not.
    replayed_values = resumed.journal.values[: len(parked.journal.values)]  # type: ignore[union-attr]
    assert replayed_values == parked.journal.values
    assert resumed.result != fresh.result
    again = executor.run(
        source, limits=LIMITS, on_call=Host(park_at=set()), journal=stored(parked.journal)
    )
    assert again.result == resumed.result


def test_random_values_are_the_ones_the_first_run_printed(executor: Executor) -> None:
    source = (
        "import random, uuid\n"
        "print(random.random(), random.Random().random(), uuid.uuid4())\n"
        "integrations.get('svc', '/park')\n"
        "result = [random.random(), random.Random().random(), str(uuid.uuid4())]\n"
        "print('after', result)\n"
    )
    host = Host(park_at={1})
    parked, resumed = run_until_done(executor, source, host)
    printed = parked.output.split()
    assert resumed.status == SUCCEEDED
    # The values after the park are live, but the ones before are the printed ones: the
    # resumed output starts with exactly what the first run printed.
    assert resumed.output.startswith(parked.output)
    assert len(printed) == 3
    assert host.output == [parked.output, resumed.output[len(parked.output) :]]


def test_steady_clocks_never_run_backwards_across_a_park(executor: Executor) -> None:
    source = (
        "import time\n"
        "before = [time.monotonic_ns(), time.perf_counter_ns()]\n"
        "integrations.get('svc', '/park')\n"
        "after = [time.monotonic_ns(), time.perf_counter_ns()]\n"
        "result = [b <= a for b, a in zip(before, after)]\n"
    )
    parked = executor.run(source, limits=LIMITS, on_call=Host(park_at={1}))
    assert parked.journal is not None
    # Resume as if on a machine whose steady clocks started much later than this one's.
    journal = stored(parked.journal)
    journal.values = [[kind, value + 10**18] for kind, value in journal.values]
    resumed = executor.run(source, limits=LIMITS, on_call=Host(park_at=set()), journal=journal)
    assert resumed.status == SUCCEEDED, resumed.to_dict()
    assert resumed.result == [True, True]


def test_set_and_dict_order_replays_with_the_installation_hash_seed() -> None:
    with Executor(idle_workers=1, hash_seed=1234) as first:
        parked = first.run(SET_ORDER, limits=LIMITS, on_call=Host(park_at={1}))
    assert parked.status == PARKED
    # A different process (a restart, another machine) with the same seed resumes it.
    with Executor(idle_workers=1, hash_seed=1234) as second:
        resumed = second.run(
            SET_ORDER, limits=LIMITS, on_call=Host(park_at=set()), journal=stored(parked.journal)
        )
    with Executor(idle_workers=1, hash_seed=4321) as other:
        differently = other.run(SET_ORDER, limits=LIMITS, on_call=Host(park_at=set()))
    assert resumed.status == SUCCEEDED, resumed.to_dict()
    assert resumed.result["set"] == resumed.result["after"]
    assert differently.result["set"] != resumed.result["set"]
    assert sorted(differently.result["set"]) == sorted(resumed.result["set"])


def test_the_hash_seed_must_fit_pythonhashseed() -> None:
    with pytest.raises(ValueError, match="hash_seed"):
        Executor(hash_seed=2**32)


def test_a_journalled_sleep_is_not_slept_again(executor: Executor) -> None:
    source = "import time\ntime.sleep(3600)\nintegrations.get('svc', '/after')\nresult = 'woke'"
    # What a first run leaves when it slept its hour, then parked at the call.
    journal = Journal(values=[["sleep", 3600.0]], wall_s=1.0)
    limits = Limits(wall_time_s=5, cpu_time_s=2, memory_mb=128)
    host = Host(park_at=set())
    resumed = executor.run(source, limits=limits, on_call=host, journal=journal)
    assert (resumed.status, resumed.result) == (SUCCEEDED, "woke"), resumed.to_dict()
    assert host.asked == ["/after"]
    assert resumed.journal is not None and resumed.journal.values == [["sleep", 3600.0]]


def test_a_sleep_is_journalled_and_replayed(executor: Executor) -> None:
    source = "import time\ntime.sleep(0.05)\nintegrations.get('svc', '/park')\nresult = 'ok'"
    parked, resumed = parked_then_resumed(executor, source)
    assert parked.journal is not None and parked.journal.values == [["sleep", 0.05]]
    assert resumed.journal is not None and resumed.journal.values == [["sleep", 0.05]]
    changed = source.replace("0.05", "0.07")
    diverged = executor.run(
        changed, limits=LIMITS, on_call=Host(park_at=set()), journal=stored(parked.journal)
    )
    assert (diverged.status, diverged.error.code if diverged.error else None) == (
        FAILED,
        REPLAY_DIVERGED,
    )
    assert diverged.error is not None and "slept 0.07 s where the first run slept 0.05 s" in (
        diverged.error.message
    )


OUTPUT = """
print('line one')
print('partial ', end='')
integrations.get('svc', '/a')
print('line two')
integrations.get('svc', '/b')
print('done', end='')
result = 'ok'
"""


def test_output_is_delivered_exactly_once_across_parks(executor: Executor) -> None:
    host = Host(park_at={1, 3})
    outcomes = run_until_done(executor, OUTPUT, host)
    assert [o.status for o in outcomes] == [PARKED, PARKED, SUCCEEDED]
    assert "".join(host.output) == "line one\npartial line two\ndone"
    assert outcomes[-1].output == "line one\npartial line two\ndone"
    assert outcomes[-1].journal is not None
    assert outcomes[-1].journal.output_chars == len("line one\npartial line two\ndone")


SEVERAL_CALLS = """
import time, random
got = []
for path in ['/one', '/two', '/three', '/four']:
    got.append([integrations.get('svc', path).text, time.time(), random.random()])
print('finished')
result = got
"""


def test_several_calls_and_several_parks_resume_to_the_live_result(executor: Executor) -> None:
    # Park at the second call, resume; park at the fourth, resume.
    host = Host(park_at={2, 4})
    outcomes = run_until_done(executor, SEVERAL_CALLS, host)
    assert [o.status for o in outcomes] == [PARKED, PARKED, SUCCEEDED]
    # Each call was asked once live, plus once more for each park: never replayed to the host.
    assert host.asked == ["/one", "/two", "/two", "/three", "/three", "/four"]
    final = outcomes[-1]
    texts = [entry[0] for entry in final.result]
    assert texts == ["reply 1 to /one", "reply 3 to /two", "reply 5 to /three", "reply 6 to /four"]
    assert final.calls == 4
    assert final.journal is not None and len(final.journal) == 4
    assert [len(o.journal) for o in outcomes] == [1, 2, 4]  # type: ignore[arg-type]
    # The values seen before the second park are the same in the final run.
    second = outcomes[1].journal
    assert second is not None
    assert final.journal.values[: len(second.values)] == second.values
    assert "".join(host.output) == "finished\n"


def test_a_host_call_error_is_journalled_too(executor: Executor) -> None:
    source = (
        "try:\n    integrations.get('nope', '/x')\nexcept integrations.UnknownIntegration as e:\n"
        "    first = str(e)\nintegrations.get('svc', '/park')\nresult = first\n"
    )
    asked: list[str] = []

    def host(call: HostCall) -> Any:
        asked.append(call.args["service"])
        if call.args["service"] == "nope":
            raise HostCallError("unknown_integration", "no integration named 'nope'")
        if asked.count("svc") == 1:
            raise ParkRun()
        return response("ok")

    parked = executor.run(source, limits=LIMITS, on_call=host)
    resumed = executor.run(source, limits=LIMITS, on_call=host, journal=stored(parked.journal))
    assert (resumed.status, resumed.result) == (SUCCEEDED, "no integration named 'nope'")
    assert asked == ["nope", "svc", "svc"]


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
        CLOCK_IN_SECOND_CALL, limits=LIMITS, on_call=Host(park_at=set()),
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


def running_worker(executor: Executor, idle_before: set[int]) -> int:
    """The pid of the one worker that left the idle pool since `idle_before`."""
    (pid,) = idle_before - set(executor.idle_pids())
    return pid


def test_a_parked_runs_worker_is_really_gone(executor: Executor) -> None:
    idle_before = set(executor.idle_pids())
    pidfds: list[int] = []

    def host(call: HostCall) -> Any:
        pidfds.append(os.pidfd_open(running_worker(executor, idle_before)))
        signal.pidfd_send_signal(pidfds[0], 0)  # alive while the call is being made
        raise ParkRun()

    outcome = executor.run("integrations.get('svc', '/a')\nresult = 1", on_call=host)
    assert outcome.status == PARKED and outcome.error is None and outcome.calls == 0
    assert outcome.journal is not None and len(outcome.journal) == 0
    try:
        # A pidfd reads ready once its process has exited; the executor returned after that.
        ready, _, _ = select.select([pidfds[0]], [], [], 0)
        assert ready == [pidfds[0]]
        with pytest.raises(ProcessLookupError):
            signal.pidfd_send_signal(pidfds[0], 0)
    finally:
        os.close(pidfds[0])


WALL = """
import time
time.sleep(1.0)
integrations.get('svc', '/park')
time.sleep(%s)
result = 'finished'
"""


@pytest.mark.parametrize(("live_sleep", "status"), [("1.0", SUCCEEDED), ("2.5", TIMED_OUT)])
def test_wall_time_used_before_the_park_counts_once(
    executor: Executor, live_sleep: str, status: str
) -> None:
    # 3 s of wall time: 1 s before the park + 1 s after fits; 1 s + 2.5 s does not,
    # though 2.5 s alone would.
    limits = Limits(wall_time_s=3, cpu_time_s=2, memory_mb=128)
    source = WALL % live_sleep
    parked = executor.run(source, limits=limits, on_call=Host(park_at={1}))
    assert parked.journal is not None and parked.journal.wall_s >= 1.0
    resumed = executor.run(
        source, limits=limits, on_call=Host(park_at=set()), journal=stored(parked.journal)
    )
    assert resumed.status == status, resumed.to_dict()
    assert resumed.journal is not None and resumed.journal.wall_s >= 1.0 + float(live_sleep) * (
        status == SUCCEEDED
    )


def test_the_journal_survives_bytes_and_rejects_what_it_cannot_read(executor: Executor) -> None:
    parked = executor.run(CLOCKS, limits=LIMITS, on_call=Host(park_at={1}))
    assert parked.journal is not None
    data = parked.journal.to_bytes()
    assert Journal.from_bytes(data) == parked.journal
    assert json.loads(data)["v"] == 1
    broken: list[Callable[[dict[str, Any]], None]] = [
        lambda d: d.update(v=2),
        lambda d: d.update(values=[["time", "soon"]]),
        lambda d: d.update(values=[["os.environ", 1]]),
        lambda d: d.update(calls=[{"op": "request"}]),
        lambda d: d.update(wall=-1),
    ]
    for breaking in broken:
        raw = json.loads(data)
        breaking(raw)
        with pytest.raises(JournalError):
            Journal.from_bytes(json.dumps(raw).encode())
    with pytest.raises(JournalError):
        Journal.from_bytes(b"\x00not json")


def test_reading_values_past_the_journal_cap_fails_with_call_limit(executor: Executor) -> None:
    outcome = executor.run("import time\nwhile True:\n    time.time()\n", limits=LIMITS)
    assert outcome.status == FAILED and outcome.error is not None
    assert outcome.error.code == "call_limit"
    assert "more than 20000 times" in outcome.error.message
    assert outcome.error.line == 3


def test_time_waiting_for_a_person_before_the_park_is_not_used(executor: Executor) -> None:
    limits = Limits(wall_time_s=2, cpu_time_s=2, memory_mb=128)
    nobody_answers = threading.Event()

    def host(call: HostCall) -> Any:
        # The app keeps a paused run's worker a while (PARK_AFTER_S), clock stopped.
        with call.clock.paused():
            nobody_answers.wait(timeout=2.5)
        raise ParkRun()

    source = "integrations.get('svc', '/a')\nresult = 'resumed'"
    parked = executor.run(source, limits=limits, on_call=host)
    assert parked.status == PARKED
    resumed = executor.run(
        source, limits=limits, on_call=Host(park_at=set()), journal=stored(parked.journal)
    )
    assert (resumed.status, resumed.result) == (SUCCEEDED, "resumed"), resumed.to_dict()


def test_uuid1_shows_a_random_multicast_node_not_the_machine(executor: Executor) -> None:
    source = "import uuid\nu = uuid.uuid1()\nresult = [u.version, u.node, uuid.uuid1().node]"
    outcome = executor.run(source, limits=LIMITS)
    version, node, other = outcome.result
    assert version == 1
    assert node & (1 << 40) and other & (1 << 40)  # RFC 4122 §4.5: not a hardware address
    assert node != other


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("-1", "ValueError: sleep length must be non-negative"),
        ("float('inf')", "OverflowError: sleep length is too large"),
        ("'1'", "TypeError: time.sleep() takes a number of seconds"),
    ],
)
def test_sleep_refuses_what_the_stdlib_refuses(
    executor: Executor, argument: str, message: str
) -> None:
    outcome = executor.run(f"import time\ntime.sleep({argument})", limits=LIMITS)
    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.message) == ("script_error", message)
    assert outcome.journal is not None and outcome.journal.values == []


def test_the_host_checks_what_a_worker_claims_to_have_seen() -> None:
    # The worker runs hostile code: its journal values are checked, and capped, by the host.
    replay = Replay(None)
    with pytest.raises(ProtocolError):
        replay.take_values({"vals": [["time", "later"]]})
    with pytest.raises(ProtocolError):
        replay.take_values({"vals": [["environ", 1]]})
    with pytest.raises(ValuesOverflow):
        replay.take_values({"vals": [["seed", 1]] * (MAX_VALUES + 1)})
    assert replay.finish(wall_s=0.0).values == []


def test_a_reply_with_any_text_survives_the_journal_bytes() -> None:
    identity = CallIdentity.of("request", {"service": "svc", "method": "GET", "path": "/\ud800"})
    reply = {"ok": False, "error": {"code": "unknown_integration", "message": "é \ud800 ✓"}}
    journal = Journal(calls=[JournalCall(identity, reply, 0)])
    data = journal.to_bytes()
    assert data.decode("ascii")  # storable as text, as the app's vault wants it
    assert Journal.from_bytes(data) == journal


BIG_REPLIES = "for i in range(3):\n    integrations.get('svc', '/page/%d' % i)\nresult = 'read'"


def big_reply_host(*, park_at: int) -> Callable[[HostCall], Any]:
    calls: list[int] = []

    def host(call: HostCall) -> Any:
        calls.append(1)
        if len(calls) == park_at:
            raise ParkRun()
        return response("x" * 1500)  # about 2 kB as a reply frame

    return host


@pytest.mark.parametrize(
    ("journal_bytes", "park_at", "status", "code"),
    [
        (100_000, 3, PARKED, None),
        (3_000, 3, FAILED, "memory_limit"),
        (3_000, 0, SUCCEEDED, None),
    ],
)
def test_replies_beyond_the_journal_budget_are_not_kept(
    executor: Executor, journal_bytes: int, park_at: int, status: str, code: str | None
) -> None:
    limits = Limits(wall_time_s=10, cpu_time_s=5, memory_mb=128, journal_bytes=journal_bytes)
    outcome = executor.run(BIG_REPLIES, limits=limits, on_call=big_reply_host(park_at=park_at))
    assert (outcome.status, outcome.error.code if outcome.error else None) == (status, code)
    if journal_bytes < 100_000:
        # Two replies of about 2 kB outgrow 3 kB: nothing is kept, nothing could resume.
        assert outcome.journal is None
    else:
        assert outcome.journal is not None and len(outcome.journal) == 2


def test_a_seeded_zygote_is_as_isolated_as_an_unseeded_one(executor: Executor) -> None:
    # -I would ignore PYTHONHASHSEED: the seeded zygote drops only -E (-I is -E -s -P), and
    # its environment holds the seed and nothing else (no secret of the server).
    def started(pid: int | None) -> tuple[bytes, list[bytes]]:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        return environ, Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:3]

    with Executor(idle_workers=1, hash_seed=99) as seeded:
        assert started(seeded.zygote_pid) == (b"PYTHONHASHSEED=99\0", [b"-s", b"-P"])
    assert started(executor.zygote_pid) == (b"", [b"-I", b"-c"])
