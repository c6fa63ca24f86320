"""ConfigError, and the checks settings of several nouns share (a positive number, a rate)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import limits


class ConfigError(ValueError):
    """The configuration cannot serve: the message names the setting to fix."""


def require_positive(config: Any, keys: Iterable[str]) -> None:
    """Each of `keys` must be a number above 0."""
    for key in keys:
        try:
            if float(config[key]) <= 0:
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"SCRIPTBOX_{key} must be a positive number") from None


def require_rates(config: Any, keys: Iterable[str]) -> None:
    """Each of `keys` must be a rate in the `limits` notation ("10 per 5 minutes")."""
    for key in keys:
        try:
            limits.parse(str(config[key]))
        except ValueError:
            raise ConfigError(
                f"SCRIPTBOX_{key} must read like '10 per 5 minutes'"
            ) from None
