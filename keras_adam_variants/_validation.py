"""Argument checks shared by the optimizers: each error names the argument, its range and the value."""

import math
import numbers


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fail(name, allowed, value):
    raise ValueError(f"Argument `{name}` must be {allowed}; received {name}={value!r}.")


def check_learning_rate(value):
    """A number must be finite and > 0; a schedule or another callable is accepted as is."""
    if callable(value):
        return value
    if not _is_number(value):
        _fail(
            "learning_rate",
            "a number > 0, a keras.optimizers.schedules.LearningRateSchedule or a callable",
            value,
        )
    if not (math.isfinite(value) and value > 0):
        _fail("learning_rate", "a finite number > 0", value)
    return value


def check_range(name, value, low, high, high_inclusive=False):
    """``low <= value < high`` (or ``<= high`` when ``high_inclusive``), ``value`` a real number."""
    upper = "]" if high_inclusive else ")"
    allowed = f"a number in [{low}, {high}{upper}"
    if not _is_number(value) or math.isnan(value):
        _fail(name, allowed, value)
    if value < low or value > high or (value == high and not high_inclusive):
        _fail(name, allowed, value)
    return float(value)


def check_non_negative(name, value):
    """``value >= 0`` and finite."""
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        _fail(name, "a finite number >= 0", value)
    return float(value)


def check_bool(name, value):
    if not isinstance(value, bool):
        _fail(name, "True or False", value)
    return value
