"""Replay of what a script reads (DESIGN §4): clocks, sleeps, random, uuids, set order.

Real workers: a run parks when the host handler raises ParkRun, and a new worker resumes it
from the journal (serialized in between, as the app stores it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import FAILED, PARKED, REPLAY_DIVERGED, SUCCEEDED, Executor, Journal, Limits
from tests.sandbox.replaying import LIMITS, Host, parked_then_resumed, run_until_done, stored

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


def test_a_seeded_zygote_is_as_isolated_as_an_unseeded_one(executor: Executor) -> None:
    # -I would ignore PYTHONHASHSEED: the seeded zygote drops only -E (-I is -E -s -P), and
    # its environment holds the seed and nothing else (no secret of the server).
    def started(pid: int | None) -> tuple[bytes, list[bytes]]:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        return environ, Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:3]

    # Read once each has served a run: read while the interpreter was still starting (exec
    # under way), the /proc files were empty (seen once on a busy machine).
    assert executor.run("result = 1").status == SUCCEEDED
    with Executor(idle_workers=1, hash_seed=99) as seeded:
        assert seeded.run("result = 1").status == SUCCEEDED
        assert started(seeded.zygote_pid) == (b"PYTHONHASHSEED=99\0", [b"-s", b"-P"])
    assert started(executor.zygote_pid) == (b"", [b"-I", b"-c"])


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


def test_reading_values_past_the_journal_cap_fails_with_call_limit(executor: Executor) -> None:
    outcome = executor.run("import time\nwhile True:\n    time.time()\n", limits=LIMITS)
    assert outcome.status == FAILED and outcome.error is not None
    assert outcome.error.code == "call_limit"
    assert "more than 20000 times" in outcome.error.message
    assert outcome.error.line == 3
