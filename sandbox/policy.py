"""The sandbox policy, default deny: the guard hooks and the module allowlist.

Everything a script can reach is named here (its builtins in `sandbox.script_globals`).
RestrictedPython rewrites attribute access, item access, writes, iteration, imports and
print into calls to the hooks below; this module decides what those calls allow. It is
not the isolation boundary (the worker process is), but it keeps honest scripts inside
the documented API and makes hostile ones fail early with a clear `forbidden` error.
"""

from __future__ import annotations

import base64
import collections
import datetime
import decimal
import functools
import hashlib
import hmac
import itertools
import json
import math
import operator
import random
import re
import statistics
import string
import sys
import time
import types
import urllib.parse
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from RestrictedPython.transformer import INSPECT_ATTRIBUTES


class Forbidden(Exception):
    """A script tried something the policy does not allow (error code `forbidden`)."""

    code = "forbidden"


# Attributes that lead from ordinary objects to interpreter internals; RestrictedPython
# already refuses most of them at compile time, these also stop getattr(x, "...").
_DENIED_ATTRIBUTES = INSPECT_ATTRIBUTES | {"mro", "func_globals", "func_code", "f_trace_lines"}
# Values no script may hold: each is a known step towards the host's globals.
_DENIED_VALUE_TYPES = (
    types.ModuleType,
    types.FrameType,
    types.TracebackType,
    types.CodeType,
)


class ModuleView:
    """A read-only stand-in for a module, holding only the names the policy allows.

    Scripts never receive real module objects: public module attributes such as
    `re.enum` or `json.codecs` lead to other modules and from there to `os`.
    """

    __slots__ = ("_attrs", "_name")

    def __init__(self, name: str, attrs: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_attrs", dict(attrs))

    def __getattr__(self, attr: str) -> Any:
        try:
            return self._attrs[attr]
        except KeyError:
            raise AttributeError(
                f"module '{self._name}' has no attribute '{attr}' available to scripts"
            ) from None

    def __setattr__(self, attr: str, value: Any) -> None:
        raise Forbidden(f"module '{self._name}' is read-only")

    def __delattr__(self, attr: str) -> None:
        raise Forbidden(f"module '{self._name}' is read-only")

    def __dir__(self) -> list[str]:
        return sorted(self._attrs)

    def __repr__(self) -> str:
        return f"<module '{self._name}'>"


def _pick(module: Any, names: str) -> dict[str, Any]:
    return {name: getattr(module, name) for name in names.split()}


def _public(module: Any, exclude: str = "") -> dict[str, Any]:
    """Public names of a C-level module that holds only functions and constants."""
    skip = set(exclude.split())
    return {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_") and name not in skip and not isinstance(value, types.ModuleType)
    }


RANDOM_METHODS = (
    "random randint randrange choice choices shuffle sample uniform gauss triangular "
    "betavariate expovariate gammavariate lognormvariate normalvariate vonmisesvariate "
    "paretovariate weibullvariate getrandbits randbytes seed"
)


def _random_view() -> dict[str, Any]:
    # A fresh generator per run: forked workers would otherwise share the zygote's state.
    rng = random.Random()
    attrs = {name: getattr(rng, name) for name in RANDOM_METHODS.split()}
    attrs["Random"] = random.Random
    return attrs


def _module_views() -> dict[str, Callable[[], dict[str, Any]]]:
    return {
        "json": lambda: _pick(json, "dumps loads JSONDecodeError"),
        "math": lambda: _public(math),
        "re": lambda: _pick(
            re,
            "compile search match fullmatch split findall finditer sub subn escape error "
            "A ASCII I IGNORECASE M MULTILINE S DOTALL X VERBOSE U UNICODE NOFLAG",
        ),
        "datetime": lambda: _pick(
            datetime, "date datetime time timedelta timezone MINYEAR MAXYEAR"
        ),
        "time": lambda: _pick(
            time,
            "time time_ns monotonic monotonic_ns perf_counter perf_counter_ns sleep gmtime "
            "localtime mktime strftime strptime struct_time asctime ctime",
        ),
        "random": _random_view,
        "base64": lambda: _pick(
            base64,
            "b64encode b64decode urlsafe_b64encode urlsafe_b64decode standard_b64encode "
            "standard_b64decode b32encode b32decode b16encode b16decode b85encode b85decode "
            "a85encode a85decode encodebytes decodebytes",
        ),
        "hashlib": lambda: _pick(
            hashlib,
            "md5 sha1 sha224 sha256 sha384 sha512 sha3_224 sha3_256 sha3_384 sha3_512 "
            "blake2b blake2s new algorithms_guaranteed",
        ),
        "hmac": lambda: _pick(hmac, "new compare_digest digest HMAC"),
        "itertools": lambda: _public(itertools),
        # update_wrapper/wraps/total_ordering write attributes onto objects the caller
        # chooses, which would bypass the write guard; they are left out on purpose.
        "functools": lambda: _pick(functools, "reduce partial lru_cache cache cmp_to_key"),
        "collections": lambda: _pick(
            collections, "namedtuple deque defaultdict OrderedDict Counter ChainMap"
        ),
        "string": lambda: _pick(
            string,
            "ascii_letters ascii_lowercase ascii_uppercase digits hexdigits octdigits "
            "punctuation printable whitespace capwords Template",
        ),
        "urllib.parse": lambda: _pick(
            urllib.parse,
            "quote quote_plus unquote unquote_plus urlencode urlparse urlunparse urlsplit "
            "urlunsplit urljoin urldefrag parse_qs parse_qsl",
        ),
        "decimal": lambda: _pick(
            decimal,
            "Decimal Context localcontext getcontext InvalidOperation DivisionByZero "
            "DecimalException ROUND_UP ROUND_DOWN ROUND_CEILING ROUND_FLOOR ROUND_HALF_UP "
            "ROUND_HALF_DOWN ROUND_HALF_EVEN ROUND_05UP",
        ),
        "statistics": lambda: _pick(
            statistics,
            "mean fmean geometric_mean harmonic_mean median median_low median_high "
            "median_grouped mode multimode quantiles pstdev pvariance stdev variance "
            "correlation covariance linear_regression NormalDist StatisticsError",
        ),
        "uuid": lambda: _pick(
            uuid, "uuid3 uuid4 uuid5 UUID NAMESPACE_DNS NAMESPACE_URL NAMESPACE_OID NAMESPACE_X500"
        ),
    }


_MODULE_FACTORIES = _module_views()
_INTERNAL_IMPORTS = frozenset({"_strptime"})
ALLOWED_MODULES = frozenset(_MODULE_FACTORIES)


class Modules:
    """This run's module views, each built on its first import (most scripts need few).

    `overrides` replace or add names of a module (the journalled clocks and random
    generators of sandbox.script_values); every name a script reaches is still listed here
    or there.
    """

    def __init__(
        self, overrides: Mapping[str, Callable[[], Mapping[str, Any]]] | None = None
    ) -> None:
        self._views: dict[str, ModuleView] = {}
        self._overrides = dict(overrides or {})

    def get(self, name: str) -> ModuleView:
        """The view for an allowlisted module name; KeyError for any other name."""
        view = self._views.get(name)
        if view is None:
            if name == "urllib":
                view = ModuleView("urllib", {"parse": self.get("urllib.parse")})
            else:
                attrs = _MODULE_FACTORIES[name]()
                if name in self._overrides:
                    attrs.update(self._overrides[name]())
                view = ModuleView(name, attrs)
            self._views[name] = view
        return view


def make_import(modules: Modules) -> Callable[..., ModuleView]:
    """Return the `__import__` scripts get: allowlisted module views, nothing else."""

    def guarded_import(
        name: str,
        globals: Any = None,
        locals: Any = None,
        fromlist: Iterable[str] | None = (),
        level: int = 0,
    ) -> ModuleView:
        if type(name) is not str:  # a str subclass could lie in __eq__ or __hash__
            raise Forbidden("module names must be plain strings")
        if level != 0:
            raise Forbidden("relative imports are not allowed in scripts")
        if name in _INTERNAL_IMPORTS:
            # datetime/time.strptime import this from C through the frame's __import__.
            # Scripts cannot name it (RestrictedPython refuses names starting with "_").
            return sys.modules[name]  # type: ignore[return-value]
        if name not in ALLOWED_MODULES:
            allowed = ", ".join(sorted(ALLOWED_MODULES))
            raise Forbidden(f"import of '{name}' is not allowed; scripts may import: {allowed}")
        if not fromlist and "." in name:
            return modules.get(name.partition(".")[0])
        return modules.get(name)

    return guarded_import


# Builtins scripts reach for but do not get, each with why: using one is `forbidden` at its
# line, in words, where Python said only "name 'open' is not defined" (a script's own
# function of that name still shadows it).
REFUSED_BUILTINS: Mapping[str, str] = {
    "open": "scripts cannot read or write files; take data in `input` or from a service "
    "with integrations.request",
    "compile": "scripts cannot compile code",
    "globals": "scripts cannot inspect the interpreter's namespaces",
    "locals": "scripts cannot inspect the interpreter's namespaces",
    "vars": "scripts cannot inspect the interpreter's namespaces",
    "dir": "the editor's help lists what `integrations` and a response offer",
    "help": "the editor's help lists the script API",
    "exit": "to end a script early, raise an exception or put the rest under an `if`",
    "quit": "to end a script early, raise an exception or put the rest under an `if`",
}


def refused_builtin(name: str) -> Callable[..., Any]:
    """A stand-in for a builtin scripts do not get: calling it raises Forbidden saying why."""
    why = REFUSED_BUILTINS[name]

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise Forbidden(f"{name}() is not available in scripts: {why}")

    return refused


def _is_str_like(obj: Any) -> bool:
    return isinstance(obj, str) or (isinstance(obj, type) and issubclass(obj, str))


def _check_value(what: str, value: Any) -> Any:
    if isinstance(value, _DENIED_VALUE_TYPES):
        raise Forbidden(f"{what} leads to interpreter internals")
    return value


_MISSING = object()


def _attribute_name(name: Any) -> str:
    """The name itself if it is an exact str; the guards below may then trust its methods."""
    if type(name) is str:
        return name
    if isinstance(name, str):
        # A script's str subclass can make startswith/__eq__ answer anything, while
        # getattr still uses its real characters: "__class__" passed as "harmless".
        raise Forbidden("attribute names must be plain strings, not a str subclass")
    raise TypeError("attribute name must be a string")


def guarded_getattr(obj: Any, name: str, default: Any = _MISSING) -> Any:
    """The `_getattr_` hook and the scripts' `getattr`: no private or internal attributes."""
    name = _attribute_name(name)
    if name.startswith("_"):
        raise Forbidden(f"attribute '{name}' is private (names starting with '_' are not allowed)")
    if name in _DENIED_ATTRIBUTES:
        raise Forbidden(f"attribute '{name}' is not allowed in scripts")
    if name in ("format", "format_map") and _is_str_like(obj):
        # str.format reaches attributes through its format string ("{0.__class__}").
        raise Forbidden("str.format is not allowed in scripts; use f-strings or %-formatting")
    if isinstance(obj, string.Formatter) or obj is string.Formatter:
        raise Forbidden("string.Formatter is not allowed in scripts")
    if default is _MISSING:
        return _check_value(f"attribute '{name}'", getattr(obj, name))
    return _check_value(f"attribute '{name}'", getattr(obj, name, default))


def guarded_hasattr(obj: Any, name: str) -> bool:
    """The scripts' `hasattr`, answering through the same rules as getattr."""
    try:
        guarded_getattr(obj, name)
    except (AttributeError, Forbidden):
        return False
    return True


def guarded_getitem(obj: Any, key: Any) -> Any:
    """The `_getitem_` hook: no interpreter internals by subscript either."""
    return _check_value("this item", obj[key])


_MUTABLE_CONTAINERS = (dict, list, set, bytearray, collections.deque)


class OwnedClasses:
    """Classes defined by the running script: only these and containers accept writes."""

    def __init__(self) -> None:
        self._classes: weakref.WeakSet[type] = weakref.WeakSet()

    def metaclass(self, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> type:
        """The `__metaclass__` RestrictedPython uses for every class statement."""
        cls = type(name, bases, namespace)
        self._classes.add(cls)
        return cls

    def owns(self, obj: Any) -> bool:
        """True if obj is a script class or an instance of one."""
        cls = obj if isinstance(obj, type) else type(obj)
        return any(klass in self._classes for klass in cls.__mro__)

    def write_guard(self, obj: Any) -> Any:
        """The `_write_` hook: allow writes to containers and the script's own objects."""
        if isinstance(obj, _MUTABLE_CONTAINERS) or self.owns(obj):
            return obj
        raise Forbidden(f"objects of type '{type(obj).__name__}' cannot be modified by scripts")

    def setattr(self, obj: Any, name: str, value: Any) -> None:
        """The scripts' `setattr`."""
        if _attribute_name(name).startswith("_"):
            raise Forbidden("attribute names starting with '_' cannot be set")
        setattr(self.write_guard(obj), name, value)


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "^=": operator.ixor,
    "|=": operator.ior,
    "@=": operator.imatmul,
}


def inplacevar(op: str, target: Any, value: Any) -> Any:
    """The `_inplacevar_` hook for augmented assignment."""
    operation = _INPLACE.get(op)
    if operation is None:
        raise Forbidden(f"operator {op} is not allowed")
    return operation(target, value)


def apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The `_apply_` hook for calls with *args/**kwargs."""
    return func(*args, **kwargs)


def safe_type(obj: Any) -> type:
    """`type(x)` with one argument; class creation goes through `class` statements only."""
    return type(obj)
