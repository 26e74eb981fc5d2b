"""Argument checks shared by the optimizers: each error names the argument, its range and the value.

Every check raises ``ValueError("Argument `x` must be <allowed>; received x=<value>.")``. They are
stricter than Keras (the list is in the README, "Bad input"):

* Numbers are real numbers: ``int``, ``float``, NumPy scalars, ``fractions.Fraction`` and
  ``decimal.Decimal`` are accepted and stored as plain Python ``float`` (``int`` for counts), so
  ``get_config()`` is JSON and reloads; ``bool``, strings, complex numbers, arrays and ``None``
  (where a number is required) are refused, as are integers too large for a float.
* Numbers are checked as the computation holds them, in float32 (the dtype of Keras' learning-rate
  variable and of the bias corrections): a rate must be a finite, *normal* float32 (1e39 becomes
  inf, 1e-50 becomes 0, and subnormals such as 1e-40 are flushed to 0 by the CPU and GPU kernels),
  and a decay rate must stay below 1 in float32 (0.999999999 rounds to 1.0).
* ``epsilon`` must be at least `MIN_EPSILON` (1e-30) wherever it keeps a denominator away from 0:
  with ε = 0 (or an ε that float32 rounds or flushes to 0) a coordinate whose gradients have all
  been 0 takes the step 0/0 = NaN. See `check_epsilon`.
"""

import decimal
import math
import numbers

import numpy as np

# The largest finite float32 and the smallest normal one. Subnormal float32 values are flushed to
# zero by TensorFlow's CPU kernels, XLA and GPUs, so they count as 0.
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)

# The smallest ε accepted where ε keeps a denominator positive. Below about 1e-34 the ε of the
# fused Adam kernel, ε·√(1 − β2^t) (√(1 − β2) ≥ 2.4e-4 for any β2 < 1 in float32), leaves
# float32's normal range and is flushed to 0; 1e-30 keeps four orders of magnitude to spare.
MIN_EPSILON = 1e-30

# Counts (steps) are compared with Keras' int64 iteration counter.
MAX_COUNT = 2**63 - 1

_RATE_RANGE = f"[{FLOAT32_TINY:.8g}, {FLOAT32_MAX:.8g}] (finite and > 0 in float32)"


def _shown(value):
    """``repr(value)``, shortened when huge (an integer of 400 digits)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:24]}...{text[-8:]} ({len(text)} characters)"


def _fail(name, allowed, value):
    raise ValueError(f"Argument `{name}` must be {allowed}; received {name}={_shown(value)}.")


def _is_real(value):
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, (numbers.Real, decimal.Decimal))


def _real(name, value, allowed):
    """``value`` as a Python float, or the error: any real number that a float can hold."""
    if not _is_real(value):
        _fail(name, allowed, value)
    try:
        number = float(value)
    except (OverflowError, ValueError, TypeError):  # int(10**400), Decimal("sNaN")
        _fail(name, allowed, value)
    if math.isnan(number):
        _fail(name, allowed, value)
    return number


def to_float32(number):
    """``number`` rounded to float32, as a Python float (inf where float32 overflows)."""
    with np.errstate(over="ignore", under="ignore"):
        return float(np.float32(number))


def _positive_float32(name, value, allowed):
    number = _real(name, value, allowed)
    if not FLOAT32_TINY <= to_float32(number) <= FLOAT32_MAX:
        _fail(name, allowed, value)
    return number


def check_learning_rate(value):
    """A number that float32 holds as a finite normal number > 0; a schedule or callable as is.

    Returns a `keras.optimizers.schedules.LearningRateSchedule` or callable unchanged, a number as
    a Python float.
    """
    if callable(value):
        return value
    if not _is_real(value):
        _fail(
            "learning_rate",
            "a number > 0, a keras.optimizers.schedules.LearningRateSchedule or a callable",
            value,
        )
    return _positive_float32("learning_rate", value, f"a number in {_RATE_RANGE}")


def check_positive(name, value, optional=False):
    """A number that float32 holds as a finite normal number > 0 (``None`` too if ``optional``).

    For clipnorm, clipvalue, global_clipnorm and loss_scale_factor: 0 would switch clipping off
    silently (or divide the gradient by 0), a negative value flip the gradient's sign.
    """
    if optional and value is None:
        return None
    allowed = f"{'None or ' if optional else ''}a number in {_RATE_RANGE}"
    return _positive_float32(name, value, allowed)


def check_range(name, value, low, high, high_inclusive=False):
    """``low <= value < high`` (``<= high`` if ``high_inclusive``), also rounded to float32.

    Returns the value as a Python float (not rounded: the computation rounds it where it must).
    """
    upper = "]" if high_inclusive else ")"
    allowed = f"a number in [{low:g}, {high:g}{upper}"
    number = _real(name, value, allowed)
    rounded = to_float32(number)
    if not high_inclusive and number < high <= rounded:
        below = float(np.nextafter(np.float32(high), np.float32(-np.inf)))
        _fail(name, f"{allowed}, also in float32 (at most {below:.8g})", value)
    if number < low or number > high or (number == high and not high_inclusive):
        _fail(name, allowed, value)
    return number


def check_decay_rate(name, value):
    """β1, β2, ρ, momentum: a number in [0, 1) that stays below 1 in float32."""
    return check_range(name, value, 0, 1)


def check_non_negative(name, value, optional=False):
    """A number >= 0 that float32 holds as a finite number (``None`` too if ``optional``)."""
    if optional and value is None:
        return None
    prefix = "None or " if optional else ""
    allowed = f"{prefix}a number in [0, {FLOAT32_MAX:.8g}] (finite in float32)"
    number = _real(name, value, allowed)
    if not 0 <= number or not math.isfinite(to_float32(number)):
        _fail(name, allowed, value)
    return number


def check_epsilon(value, zero_allowed=False):
    """ε: at least `MIN_EPSILON` and finite in float32; 0 too where ``zero_allowed``.

    Decided once for the package: ε = 0 is refused wherever ε is what keeps a denominator
    positive, rather than defining 0/0 as 0. A coordinate whose gradients have all been 0 has
    m = v = 0, and with ε = 0 its step is 0/0 = NaN. Guarding that one case would not make ε = 0
    safe: a gradient of 1e-23 underflows g² to 0 in float32 and the step is then m/0 = inf.
    Libraries that allow ε = 0 (Keras, PyTorch) give NaN there. The one optimizer here whose
    denominator has another floor, Adagrad with ``initial_accumulator_value > 0``, passes
    ``zero_allowed=True``.
    """
    if zero_allowed:
        return check_non_negative("epsilon", value)
    allowed = (
        f"a number in [{MIN_EPSILON:g}, {FLOAT32_MAX:.8g}] (ε keeps a denominator > 0: with a "
        "smaller ε, which float32 rounds or flushes to 0, a gradient of 0 gives 0/0 = NaN)"
    )
    number = _real("epsilon", value, allowed)
    if not MIN_EPSILON <= number or not math.isfinite(to_float32(number)):
        _fail("epsilon", allowed, value)
    return number


def check_bool(name, value):
    """True or False (NumPy booleans are accepted and stored as ``bool``)."""
    if not isinstance(value, (bool, np.bool_)):
        _fail(name, "True or False", value)
    return bool(value)


def check_count(name, value, low, optional=False):
    """An integer in [low, 2**63 - 1] (``None`` too if ``optional``), stored as ``int``."""
    if optional and value is None:
        return None
    allowed = f"{'None or ' if optional else ''}an integer >= {low}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        _fail(name, allowed, value)
    if not low <= int(value) <= MAX_COUNT:
        _fail(name, allowed, value)
    return int(value)


def check_name(value):
    """None or a string."""
    if value is not None and not isinstance(value, str):
        _fail("name", "None or a string", value)
    return value


def check_base_arguments(kwargs):
    """The keyword arguments of `keras.optimizers.Optimizer`, checked and converted.

    Returns a new dict with the same keys; numbers become Python floats and ints.
    """
    checks = {
        "weight_decay": lambda v: check_non_negative("weight_decay", v, optional=True),
        "clipnorm": lambda v: check_positive("clipnorm", v, optional=True),
        "clipvalue": lambda v: check_positive("clipvalue", v, optional=True),
        "global_clipnorm": lambda v: check_positive("global_clipnorm", v, optional=True),
        "use_ema": lambda v: check_bool("use_ema", v),
        "ema_momentum": lambda v: check_range("ema_momentum", v, 0, 1, high_inclusive=True),
        "ema_overwrite_frequency": lambda v: check_count(
            "ema_overwrite_frequency", v, 1, optional=True
        ),
        "loss_scale_factor": lambda v: check_positive("loss_scale_factor", v, optional=True),
        # Keras refuses 1 itself ("an integer >= 2"): None is the way to say "no accumulation".
        "gradient_accumulation_steps": lambda v: check_count(
            "gradient_accumulation_steps", v, 2, optional=True
        ),
        "name": check_name,
    }
    return {key: checks[key](value) if key in checks else value for key, value in kwargs.items()}


def check_radam_beta_2(value):
    """RAdam's β2: in (2/3, 1), so that ρ∞ = 2/(1 − β2) − 1 exceeds 5.

    ρ_t rises towards ρ∞ and the adaptive (rectified) step is taken only while ρ_t > 5; with
    β2 <= 2/3 it never is, and RAdam would silently be SGD with momentum for ever (and β2 = 0
    has no log β2). The paper's own threshold, ρ > 4, would still leave (0.6, 2/3] unrectified
    under PyTorch's threshold of 5 that the class follows.
    """
    number = check_decay_rate("beta_2", value)
    if not 2.0 / (1.0 - number) - 1.0 > 5.0:
        _fail(
            "beta_2",
            "a number in (2/3, 1) for RAdam (ρ∞ = 2/(1 − β2) − 1 must exceed 5, or the "
            "rectified step is never taken)",
            value,
        )
    return number


# -- checks at the step ------------------------------------------------------------------------

def _dtype_name(dtype):
    import keras

    return keras.backend.standardize_dtype(dtype)


def _is_zero_in(value, dtype):
    """Whether ``value`` rounds to 0 in ``dtype`` (float16, bfloat16, float32, float64)."""
    if value == 0:
        return True
    if dtype == "bfloat16":
        import ml_dtypes

        numpy_dtype = ml_dtypes.bfloat16
    else:
        numpy_dtype = np.dtype(dtype)
    with np.errstate(over="ignore", under="ignore"):
        return float(np.asarray(value, dtype=numpy_dtype)) == 0.0


def check_variable(optimizer, variable, floors):
    """A variable ``optimizer`` (a class name) can update: floating point, with ε > 0 in its dtype.

    ``floors`` maps argument names to the values that keep the update's denominators positive (ε;
    for Adagrad also its initial accumulator); at least one must stay nonzero in the variable's
    dtype (ε = 1e-8 is 0 in float16). Raises ValueError otherwise.
    """
    dtype = _dtype_name(variable.dtype)
    name = getattr(variable, "path", None) or getattr(variable, "name", "?")
    if "float" not in dtype:
        raise ValueError(
            f"{optimizer} cannot update variable '{name}' of dtype {dtype}: the optimizers of "
            "keras_adam_variants update floating-point variables only (float16, bfloat16, "
            "float32, float64). Make the variable non-trainable, or give it a float dtype."
        )
    if floors and all(_is_zero_in(value, dtype) for value in floors.values()):
        given = ", ".join(f"{key}={value!r}" for key, value in floors.items())
        smallest = float(np.finfo(np.float16).smallest_subnormal) if dtype == "float16" else None
        hint = f"at least {smallest:.2g} for float16" if smallest else f"larger for {dtype}"
        raise ValueError(
            f"Argument `{next(iter(floors))}` must be nonzero in the dtype of every variable: "
            f"{given} is 0 in {dtype} (variable '{name}'), where a gradient of 0 would give "
            f"0/0 = NaN; use {hint}, or float32 variables (a mixed_float16 policy keeps them); "
            f"received {given}."
        )


def _static_shape(value):
    """The static shape of a tensor as a tuple (None for unknown sizes), or None if no rank."""
    shape = getattr(value, "shape", None)
    if shape is None or getattr(shape, "rank", 0) is None:
        return None
    return tuple(None if d is None else int(d) for d in shape)


def check_gradient(optimizer, gradient, variable):
    """The gradient's static shape and dtype fit ``variable``; raises ValueError otherwise.

    A dense gradient must have the variable's shape exactly (no broadcasting); a
    ``tf.IndexedSlices`` gradient rows of the variable's row shape and, where known, its dense
    shape. Sizes unknown at trace time are not checked. Complex gradients are refused (a cast to
    the variable's dtype would drop the imaginary part).
    """
    if gradient is None:
        return
    name = getattr(variable, "path", None) or getattr(variable, "name", "?")
    var_shape = _static_shape(variable)
    dtype = getattr(gradient, "dtype", None)
    if dtype is not None and "complex" in _dtype_name(dtype):
        raise ValueError(
            f"{optimizer} got a gradient of dtype {_dtype_name(dtype)} for variable '{name}': "
            "gradients must be real (float or integer)."
        )
    if hasattr(gradient, "indices") and hasattr(gradient, "dense_shape"):  # tf.IndexedSlices
        rows = _static_shape(gradient.values)
        dense = None
        try:
            import tensorflow as tf

            dense = tf.get_static_value(gradient.dense_shape)
        except Exception:  # noqa: BLE001 - not a TensorFlow value: nothing more to check
            pass
        problem = None
        if rows is not None and var_shape is not None and not _compatible(rows[1:], var_shape[1:]):
            problem = f"rows of shape {rows[1:]}"
        elif dense is not None and var_shape is not None and not _compatible(
            tuple(int(d) for d in dense), var_shape
        ):
            problem = f"dense shape {tuple(int(d) for d in dense)}"
        if problem:
            raise ValueError(
                f"{optimizer} got a sparse gradient with {problem} for variable '{name}' of "
                f"shape {var_shape}: it must match the variable's shape."
            )
        return
    shape = _static_shape(gradient)
    if shape is not None and var_shape is not None and not _compatible(shape, var_shape):
        raise ValueError(
            f"{optimizer} got a gradient of shape {shape} for variable '{name}' of shape "
            f"{var_shape}: a gradient must have its variable's shape (it is not broadcast)."
        )


def _compatible(shape, other):
    return len(shape) == len(other) and all(
        a is None or b is None or a == b for a, b in zip(shape, other)
    )
