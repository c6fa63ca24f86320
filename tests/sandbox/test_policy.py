"""The policy, guard by guard, and a corpus of escape attempts, each with its exact outcome.

Every hostile source is a constant; the table says how the run must end: the status, the
error code and, where it matters, the line. `forbidden` comes from the policy (at compile
time or from a guard at run time); `script_error` means Python itself refused (NameError
for a builtin that does not exist, AttributeError for a name a module view lacks…).
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from sandbox import policy
from sandbox.journal import ValueLog
from sandbox.script_values import time_names

# -- guards, one by one ---------------------------------------------------------------------
GETATTR_PRIVATE = "x = (1).__class__"
GETATTR_COMPUTED = 'x = getattr(1, "__cla" + "ss__")'
GETATTR_INSPECT = 'g = (i for i in []); x = getattr(g, "gi_frame")'
GETATTR_FORMAT = 'x = "{0.__class__}".format(1)'
GETATTR_STR_TYPE_FORMAT = 'x = str.format("{0.__class__}", 1)'
GETATTR_FORMAT_MAP = 'x = "{a}".format_map({"a": 1})'
GETITEM_OK = "result = [10, 20][1] + {'k': 3}['k']"
WRITE_CONTAINERS_OK = "d = {}; d['a'] = 1; l = [0]; l[0] = 2; result = [d, l]"
WRITE_MODULE = "import json\njson.dumps = None"
WRITE_INTEGRATIONS = "integrations.request = None"
WRITE_OWN_CLASS_OK = "class A:\n    pass\na = A()\na.x = 5\nresult = a.x"
SETATTR_PRIVATE = "class A:\n    pass\nsetattr(A(), '_x', 1)"
SETATTR_FOREIGN = "setattr(integrations, 'x', 1)"
INPLACE_OK = "x = 1\nx += 2\nx *= 5\nresult = x"
APPLY_OK = "def f(*a, **k):\n    return [a, k]\nresult = f(*[1, 2], **{'z': 3})"
UNPACK_OK = "a, (b, c) = 1, (2, 3)\nresult = [a, b, c]"
ITER_UNPACK_OK = "result = [a + b for a, b in [(1, 2), (3, 4)]]"
PRINT_FILE = "print('x', file=integrations)"
TYPE_ONE_ARG_OK = "result = type(1) is int"
TYPE_THREE_ARGS = "X = type('X', (), {})"
IMPORT_ALLOWED_OK = (
    "import json, math, re, datetime, time, random, base64, hashlib, hmac, itertools\n"
    "import functools, collections, string, decimal, statistics, uuid\n"
    "from urllib.parse import quote\n"
    "result = [json.dumps([1]), math.floor(2.5), quote('a b'), len(str(uuid.uuid4()))]"
)
IMPORT_OS = "import os"
IMPORT_FROM_SYS = "from sys import modules"
IMPORT_URLLIB_REQUEST = "import urllib.request"
IMPORT_RELATIVE = "from . import x"
IMPORT_IMPORTLIB = "import importlib"
METACLASS_KEYWORD = "class X(metaclass=type):\n    pass"

# -- escape corpus ----------------------------------------------------------------------------
SUBCLASSES_WALK = "x = ().__class__.__bases__[0].__subclasses__()"
MRO_WALK = "x = type(1).mro()"
GETATTR_MRO = 'x = getattr(type(1), "mro")()'
GEN_FRAME = "def g():\n    yield 1\nx = g().gi_frame.f_back"
GEN_CODE = "def g():\n    yield 1\nx = g().gi_code"
TRACEBACK_FRAME = "try:\n    1 / 0\nexcept Exception as e:\n    x = e.__traceback__.tb_frame"
TRACEBACK_GETATTR = 'try:\n    1 / 0\nexcept Exception as e:\n    x = getattr(e, "__traceback__")'
FUNC_GLOBALS = "def f():\n    pass\nx = f.__globals__"
FUNC_CODE = "def f():\n    pass\nx = f.__code__"
BUILTINS_NAME = "x = __builtins__"
IMPORT_DUNDER = "x = __import__('os')"
EVAL = "eval('1')"
EXEC = "exec('x = 1')"
COMPILE = "compile('1', 'x', 'eval')"
OPEN = "open('/etc/passwd')"
GLOBALS = "x = globals()"
VARS = "x = vars()"
LOCALS = "x = locals()"
DIR = "x = dir()"
BREAKPOINT = "breakpoint()"
INPUT_BUILTIN = "x = input.__class__"
RE_ENUM = "import re\nx = re.enum"
JSON_CODECS = "import json\nx = json.codecs"
DATETIME_SYS = "import datetime\nx = datetime.sys"
COLLECTIONS_ABC = "import collections\nx = collections.abc"
FUNCTOOLS_WRAPS = "import functools\nx = functools.wraps"
RANDOM_OS = "import random\nx = random._os"
STRING_FORMATTER = "import string\nx = string.Formatter"
FULLWIDTH_EVAL = "ｅｖａｌ('1')"
FULLWIDTH_DUNDER = "x = ＿＿import＿＿('os')"
MODIFIER_LETTER = "ᵉval('1')"
SHADOW_GETATTR = "_getattr_ = lambda o, n: o"
SHADOW_BUILTINS = "__builtins__ = {}"
SHADOW_PRINT = "_print_ = None"
SHADOW_WRITE = "def _write_(o):\n    return o"
SYSTEM_EXIT = "raise SystemExit(0)"
KEYBOARD_INTERRUPT = "raise KeyboardInterrupt"
BASE_EXCEPTION = "try:\n    pass\nexcept BaseException:\n    pass\nx = BaseException"
ASYNC_DEF = "async def f():\n    pass"
LAMBDA_DEFAULT = "f = lambda x=().__class__: x"
DECORATOR_ESCAPE = "def d(f):\n    return f.__globals__\n@d\ndef g():\n    pass"
FSTRING_ATTR = 'x = f"{().__class__}"'
INTEGRATIONS_PRIVATE = "x = integrations._host_call"
RESPONSE_PRIVATE = "x = integrations.request.__self__"
CLASS_DICT = "class X:\n    pass\nx = X.__dict__"
CLASS_INIT_SUBCLASS = "class X:\n    def __init_subclass__(cls):\n        pass"
SUPER_WALK = "x = super"
GETATTR_NON_STRING = "x = getattr(1, 5)"
FORMAT_BUILTIN_OK = "result = format(3.14159, '.2f')"
PERCENT_FORMAT_OK = "result = '%s-%d' % ('a', 1)"
DECIMAL_CONTEXT_WRITE = "import decimal\ndecimal.getcontext().prec = 10 ** 9"
UPDATE_WRAPPER_ABSENT = "import functools\nfunctools.update_wrapper(integrations, len)"
OBJECT_SUBCLASSES = "x = object.__subclasses__()"

# -- script objects that lie: the policy must not call their methods or trust their answers --
LYING_STR = "class S(str):\n    def startswith(self, *args):\n        return False\n"
LYING_STR_GETATTR = LYING_STR + 'x = getattr((), S("__class__"))'
LYING_STR_HASATTR = LYING_STR + 'result = hasattr((), S("__class__"))'
LYING_STR_SETATTR = (
    LYING_STR + "class A:\n    pass\nsetattr(A, S('__str__'), lambda self: 'x')\nresult = str(A())"
)
# The escape of issue 8, walking from () to a socket through os's globals.
LYING_STR_TO_SOCKET = LYING_STR + """def g(obj, name):
    return getattr(obj, S(name))
for cls in g(g(g((), "__class__"), "__base__"), "__subclasses__")():
    try:
        if g(cls, "__name__") == "_wrap_close":
            os_globals = g(g(cls, "__init__"), "__globals__")
            socket = g(os_globals["sys"], "modules")["socket"]
            g(socket, "create_connection")(("127.0.0.1", input)).sendall(b"escaped")
    except Exception:
        pass
"""
LYING_STR_FORMAT = LYING_STR + 'x = S("{0.__class__}").format(1)'
LYING_STR_FORMAT_SPEC = LYING_STR + 'x = format(1, S("{0.__class__}"))'
LYING_STR_PRINT_FILE = LYING_STR + 'print("x", **{S("file"): integrations})'
LYING_STR_UPPER = (
    "class M(str):\n    def upper(self):\n        return {'evil': True}\n"
    "integrations.request('gh', M('get'), '/')"
)
LYING_DICT_ITEMS = (
    "class D(dict):\n    def items(self):\n        return [('a', integrations)]\nresult = D(a=1)"
)
FORGED_CODE = "class F(integrations.IntegrationError):\n    code = 'cpu_limit'\nraise F('x')"
FORGED_SUBCLASS_CODE = (
    "class F(integrations.NoIntegrationGrant):\n    code = 'interrupted'\nraise F('refused')"
)
MAGIC_INDEX = "class N:\n    def __index__(self):\n        return 0"
MAGIC_HASH = "class N:\n    def __hash__(self):\n        return 0"
MAGIC_STR = "class N:\n    def __str__(self):\n        return 'x'"
MAGIC_ITER = "class N:\n    def __iter__(self):\n        return iter([])"
MAGIC_LEN = "class N:\n    def __len__(self):\n        return 0"
MAGIC_ASSIGN = "class N:\n    __hash__ = None"
LYING_EQ_KEY = (
    "class K(str):\n    def __eq__(self, other):\n        return True\n"
    "result = getattr(1, K('real'))"
)

CASES: list[tuple[str, str, str | None, int | None]] = [
    # source, status, error code, line
    (GETATTR_PRIVATE, "failed", "forbidden", 1),
    (GETATTR_COMPUTED, "failed", "forbidden", 1),
    (GETATTR_INSPECT, "failed", "forbidden", 1),
    (GETATTR_FORMAT, "failed", "forbidden", 1),
    (GETATTR_STR_TYPE_FORMAT, "failed", "forbidden", 1),
    (GETATTR_FORMAT_MAP, "failed", "forbidden", 1),
    (GETITEM_OK, "succeeded", None, None),
    (WRITE_CONTAINERS_OK, "succeeded", None, None),
    (WRITE_MODULE, "failed", "forbidden", 2),
    (WRITE_INTEGRATIONS, "failed", "forbidden", 1),
    (WRITE_OWN_CLASS_OK, "succeeded", None, None),
    (SETATTR_PRIVATE, "failed", "forbidden", 3),
    (SETATTR_FOREIGN, "failed", "forbidden", 1),
    (INPLACE_OK, "succeeded", None, None),
    (APPLY_OK, "succeeded", None, None),
    (UNPACK_OK, "succeeded", None, None),
    (ITER_UNPACK_OK, "succeeded", None, None),
    (PRINT_FILE, "failed", "forbidden", 1),
    (TYPE_ONE_ARG_OK, "succeeded", None, None),
    (TYPE_THREE_ARGS, "failed", "script_error", 1),
    (IMPORT_ALLOWED_OK, "succeeded", None, None),
    (IMPORT_OS, "failed", "forbidden", 1),
    (IMPORT_FROM_SYS, "failed", "forbidden", 1),
    (IMPORT_URLLIB_REQUEST, "failed", "forbidden", 1),
    (IMPORT_RELATIVE, "failed", "forbidden", 1),
    (IMPORT_IMPORTLIB, "failed", "forbidden", 1),
    (METACLASS_KEYWORD, "failed", "forbidden", 1),
    (SUBCLASSES_WALK, "failed", "forbidden", 1),
    (MRO_WALK, "failed", "forbidden", 1),
    (GETATTR_MRO, "failed", "forbidden", 1),
    (GEN_FRAME, "failed", "forbidden", 3),
    (GEN_CODE, "failed", "forbidden", 3),
    (TRACEBACK_FRAME, "failed", "forbidden", 4),
    (TRACEBACK_GETATTR, "failed", "forbidden", 4),
    (FUNC_GLOBALS, "failed", "forbidden", 3),
    (FUNC_CODE, "failed", "forbidden", 3),
    (BUILTINS_NAME, "failed", "forbidden", 1),
    (IMPORT_DUNDER, "failed", "forbidden", 1),
    (EVAL, "failed", "forbidden", 1),
    (EXEC, "failed", "forbidden", 1),
    (COMPILE, "failed", "forbidden", 1),
    (OPEN, "failed", "forbidden", 1),
    (GLOBALS, "failed", "forbidden", 1),
    (VARS, "failed", "forbidden", 1),
    (LOCALS, "failed", "forbidden", 1),
    (DIR, "failed", "forbidden", 1),
    (BREAKPOINT, "failed", "forbidden", 1),
    (INPUT_BUILTIN, "failed", "forbidden", 1),
    (RE_ENUM, "failed", "script_error", 2),
    (JSON_CODECS, "failed", "script_error", 2),
    (DATETIME_SYS, "failed", "script_error", 2),
    (COLLECTIONS_ABC, "failed", "script_error", 2),
    (FUNCTOOLS_WRAPS, "failed", "script_error", 2),
    (RANDOM_OS, "failed", "forbidden", 2),
    (STRING_FORMATTER, "failed", "script_error", 2),
    (FULLWIDTH_EVAL, "failed", "forbidden", 1),
    (FULLWIDTH_DUNDER, "failed", "compile_error", 1),
    (MODIFIER_LETTER, "failed", "forbidden", 1),
    (SHADOW_GETATTR, "failed", "forbidden", 1),
    (SHADOW_BUILTINS, "failed", "forbidden", 1),
    (SHADOW_PRINT, "failed", "forbidden", 1),
    (SHADOW_WRITE, "failed", "forbidden", 1),
    (SYSTEM_EXIT, "failed", "script_error", 1),
    (KEYBOARD_INTERRUPT, "failed", "script_error", 1),
    (BASE_EXCEPTION, "failed", "script_error", 5),
    (ASYNC_DEF, "failed", "forbidden", 1),
    (LAMBDA_DEFAULT, "failed", "forbidden", 1),
    (DECORATOR_ESCAPE, "failed", "forbidden", 2),
    (FSTRING_ATTR, "failed", "forbidden", 1),
    (INTEGRATIONS_PRIVATE, "failed", "forbidden", 1),
    (RESPONSE_PRIVATE, "failed", "forbidden", 1),
    (CLASS_DICT, "failed", "forbidden", 3),
    (CLASS_INIT_SUBCLASS, "failed", "forbidden", 2),
    (SUPER_WALK, "failed", "script_error", 1),
    (GETATTR_NON_STRING, "failed", "script_error", 1),
    (FORMAT_BUILTIN_OK, "succeeded", None, None),
    (PERCENT_FORMAT_OK, "succeeded", None, None),
    (DECIMAL_CONTEXT_WRITE, "failed", "forbidden", 2),
    (UPDATE_WRAPPER_ABSENT, "failed", "script_error", 2),
    (OBJECT_SUBCLASSES, "failed", "forbidden", 1),
    (LYING_STR_GETATTR, "failed", "forbidden", 4),
    (LYING_STR_HASATTR, "succeeded", None, None),
    (LYING_STR_SETATTR, "failed", "forbidden", 6),
    (LYING_STR_TO_SOCKET, "failed", "forbidden", 5),
    (LYING_STR_FORMAT, "failed", "forbidden", 4),
    (LYING_STR_FORMAT_SPEC, "failed", "script_error", 4),
    (LYING_STR_PRINT_FILE, "failed", "forbidden", 4),
    (LYING_STR_UPPER, "failed", "invalid_request", 4),
    (LYING_DICT_ITEMS, "succeeded", None, None),
    (FORGED_CODE, "failed", "integration_error", 3),
    (FORGED_SUBCLASS_CODE, "failed", "no_integration_grant", 3),
    (MAGIC_INDEX, "failed", "forbidden", 2),
    (MAGIC_HASH, "failed", "forbidden", 2),
    (MAGIC_STR, "failed", "forbidden", 2),
    (MAGIC_ITER, "failed", "forbidden", 2),
    (MAGIC_LEN, "failed", "forbidden", 2),
    (MAGIC_ASSIGN, "failed", "forbidden", 2),
    (LYING_EQ_KEY, "failed", "forbidden", 4),
]

# Exact results of the lying-object cases that succeed: the policy read the real values.
LYING_RESULTS = {LYING_STR_HASATTR: False, LYING_DICT_ITEMS: {"a": 1}}


@pytest.mark.parametrize(
    ("source", "status", "code", "line"), CASES, ids=[f"{i:02d}" for i in range(len(CASES))]
)
def test_policy_outcome(
    run: Any, source: str, status: str, code: str | None, line: int | None
) -> None:
    outcome = run(source)
    assert outcome.status == status, outcome.to_dict()
    if code is None:
        assert outcome.error is None
    else:
        assert outcome.error is not None and outcome.error.code == code, outcome.to_dict()
        assert outcome.error.line == line, outcome.to_dict()


def _outcome(done: dict[str, Any]) -> tuple[str, str | None, int | None]:
    error = done.get("error") or {}
    return done["status"], error.get("code"), error.get("line")


def test_the_policy_holds_alone_without_the_jail(run_alone: Any) -> None:
    # The same corpus, with no Landlock, seccomp, rlimits or identity change underneath.
    finished = run_alone([{"source": source} for source, *_ in CASES])
    for (source, status, code, line), alone in zip(CASES, finished, strict=True):
        assert _outcome(alone["done"]) == (status, code, line), (source, alone)
        if source in LYING_RESULTS:
            assert json.loads(alone["done"]["result_json"]) == LYING_RESULTS[source]


def test_lying_objects_are_read_for_what_they_are(run: Any) -> None:
    for source, expected in LYING_RESULTS.items():
        assert run(source).result == expected


def test_the_socket_escape_reaches_no_canary(run_alone: Any) -> None:
    with socket.create_server(("127.0.0.1", 0)) as canary:
        canary.setblocking(False)
        port = canary.getsockname()[1]
        [alone] = run_alone([{"source": LYING_STR_TO_SOCKET, "input": port}])
        # The harness process has exited: a connection it made would be queued by now.
        try:
            leaked, _ = canary.accept()
        except BlockingIOError:
            leaked = None
        if leaked is not None:
            with leaked:
                leaked.setblocking(True)
                pytest.fail(f"the script reached the canary and sent {leaked.recv(64)!r}")
        assert _outcome(alone["done"]) == ("failed", "forbidden", 5)


def test_guards_take_only_exact_strings() -> None:
    lying = type("S", (str,), {"startswith": lambda self, *args: False})
    with pytest.raises(policy.Forbidden, match="plain strings"):
        policy.make_import(policy.Modules())(lying("os"))
    with pytest.raises(policy.Forbidden, match="plain strings"):
        policy.guarded_getattr((), lying("__class__"))
    assert policy.guarded_hasattr((), lying("__class__")) is False
    with pytest.raises(policy.Forbidden, match="interpreter internals"):
        policy.guarded_getitem({"m": json}, "m")


def test_the_corpus_holds_at_least_forty_escape_attempts() -> None:
    escapes = [case for case in CASES if case[1] == "failed"]
    assert len(escapes) >= 40


def test_results_of_allowed_code(run: Any) -> None:
    assert run(GETITEM_OK).result == 23
    assert run(WRITE_OWN_CLASS_OK).result == 5
    assert run(INPLACE_OK).result == 15
    assert run(APPLY_OK).result == [[1, 2], {"z": 3}]
    assert run(UNPACK_OK).result == [1, 2, 3]
    assert run(IMPORT_ALLOWED_OK).result == ["[1]", 2, "a%20b", 36]


def test_import_errors_list_the_allowed_modules(run: Any) -> None:
    message = run(IMPORT_OS).error.message
    assert "import of 'os' is not allowed" in message and "json" in message


def test_a_refused_builtin_says_why_at_its_line(run: Any) -> None:
    # Python's own words were "NameError: name 'open' is not defined", as for a typo.
    outcome = run("x = 1\nwith open('/etc/passwd') as f:\n    print(f.read())")
    assert (outcome.error.code, outcome.error.line) == ("forbidden", 2)
    assert outcome.error.message == (
        "open() is not available in scripts: scripts cannot read or write files; take data "
        "in `input` or from a service with integrations.request"
    )
    assert run("exit()").error.message == (
        "exit() is not available in scripts: to end a script early, raise an exception or "
        "put the rest under an `if`"
    )
    # A script's own function of that name is its own.
    assert run("def open(x):\n    return x\nresult = open(3)").result == 3


def test_no_state_is_shared_between_runs(run: Any) -> None:
    draws = {
        tuple(run("import random\nresult = [random.random() for _ in range(3)]").result)
        for _ in range(5)
    }
    assert len(draws) == 5  # each worker has its own generator, seeded afresh


def test_compile_errors_come_back_as_data(run: Any) -> None:
    outcome = run("x = 1\nif True\n    pass")
    assert outcome.error.code == "compile_error" and outcome.error.line == 2
    nested = run("x = " + "(" * 500 + ")" * 500)
    assert nested.error.code == "compile_error"
    deep = run("x = " + "[" * 3000 + "]" * 3000)
    assert deep.error.code == "compile_error"


def test_a_refusal_at_compile_time_says_where_the_others_are(run: Any) -> None:
    outcome = run("x = 1\nprint((1).__class__.__bases__)\n_a = 2\ny = 3\nz = _a")
    assert (outcome.error.code, outcome.error.line) == ("forbidden", 2)
    assert outcome.error.message == (
        '"__bases__" is an invalid attribute name because it starts with "_". '
        "(and 3 more: lines 2, 3, 5)"
    )
    same = run("x = 1\nprint((1).__class__.__bases__)")
    assert same.error.line == 2
    assert same.error.message.endswith('"_". (and 1 more on the same line)')
    one = run("x = (1).__class__")
    assert one.error.message.endswith('because it starts with "_".')  # alone: no "more"


def test_runtime_errors_carry_the_script_line(run: Any) -> None:
    outcome = run("def f(x):\n    return 1 / x\n\ny = f(0)")
    assert outcome.error.code == "script_error"
    assert outcome.error.message == "ZeroDivisionError: division by zero"
    assert outcome.error.line == 2


def test_output_is_captured_from_every_scope(run: Any) -> None:
    outcome = run("def f():\n    print('inside')\nprint('outside')\nf()\nresult = printed")
    assert outcome.output == "outside\ninside\n"
    assert outcome.result == "outside\ninside\n"


def test_sleep_checks_the_real_number_not_a_lying_one() -> None:
    lying = type("F", (float,), {"__ge__": lambda self, other: True})
    log = ValueLog([])
    with pytest.raises(ValueError, match="non-negative"):
        time_names(log)["sleep"](lying(-1.0))
    assert log.frame_fields()["vals"] == []  # refused before anything was journalled
