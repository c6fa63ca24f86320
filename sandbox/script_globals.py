"""A script's builtins and the hook globals RestrictedPython's rewritten code calls into,
assembled from the policy (`sandbox.policy`): an explicit allowlist, nothing inherited."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

from sandbox.policy import (
    REFUSED_BUILTINS,
    Forbidden,
    Modules,
    OwnedClasses,
    apply,
    guarded_getattr,
    guarded_getitem,
    guarded_hasattr,
    inplacevar,
    make_import,
    refused_builtin,
    safe_type,
)

_BUILTIN_NAMES = (
    "abs all any ascii bin bool bytearray bytes callable chr complex dict divmod enumerate "
    "filter float format frozenset hash hex int isinstance issubclass iter len list map max "
    "min next object oct ord pow range repr reversed round set slice sorted str sum tuple zip "
    "ArithmeticError AssertionError AttributeError Exception IndexError KeyError LookupError "
    "NameError NotImplementedError OverflowError RecursionError RuntimeError StopIteration "
    "TypeError UnicodeError UnicodeDecodeError UnicodeEncodeError ValueError ZeroDivisionError "
    "MemoryError TimeoutError"
)


def _static_builtins() -> dict[str, Any]:
    import builtins

    names = {name: getattr(builtins, name) for name in _BUILTIN_NAMES.split()}
    names.update({name: refused_builtin(name) for name in REFUSED_BUILTINS})
    names.update(
        {
            "None": None,
            "True": True,
            "False": False,
            "Ellipsis": Ellipsis,
            "NotImplemented": NotImplemented,
            "getattr": guarded_getattr,
            "hasattr": guarded_hasattr,
            "type": safe_type,
            "Forbidden": Forbidden,
            # `class` statements compile to __build_class__; RestrictedPython makes every
            # class use __metaclass__ (OwnedClasses.metaclass), and scripts cannot name it.
            "__build_class__": builtins.__build_class__,
        }
    )
    return names


_STATIC_BUILTINS = _static_builtins()


def build_builtins(modules: Modules, owned: OwnedClasses) -> dict[str, Any]:
    """The complete builtins of a script: an explicit allowlist, nothing inherited."""
    names = dict(_STATIC_BUILTINS)
    names["setattr"] = owned.setattr
    names["__import__"] = make_import(modules)
    return names


def build_globals(
    *, builtins: dict[str, Any], owned: OwnedClasses, print_factory: Callable[..., Any]
) -> dict[str, Any]:
    """The hook globals RestrictedPython's rewritten code calls into."""
    return {
        "__builtins__": builtins,
        "__name__": "script",
        "__metaclass__": owned.metaclass,
        "_getattr_": guarded_getattr,
        "_getitem_": guarded_getitem,
        "_getiter_": iter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": owned.write_guard,
        "_inplacevar_": inplacevar,
        "_apply_": apply,
        "_print_": print_factory,
    }
