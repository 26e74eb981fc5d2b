"""Bad input gets a clear ValueError that names the argument, the allowed range and the value.

One table, ``RULES``, gives for every constructor argument of every optimizer (its own
hyperparameters and the Keras base class's keywords) the values it must refuse and values it
must accept, with what ``get_config()`` then holds. The tests run it over every class in
``kav.names()``; a new optimizer inherits them, and a new argument name fails
``test_every_argument_has_a_rule`` until it gets a row. The checks at the step (variable dtype,
gradient shape) and the ε decision are tested over every class and mode below.
"""

import dataclasses
import decimal
import inspect
import json
import math
from fractions import Fraction

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adam_variants as kav
from keras_adam_variants._base import BASE_ARGUMENTS
from keras_adam_variants._validation import FLOAT32_TINY, MIN_EPSILON

CLASSES = [kav.get(name) for name in kav.names()]
BIG = 10**400  # an integer no float holds
ANY = object()  # accepted; what the config holds is not checked (an automatic name)


@dataclasses.dataclass
class Rule:
    bad: list
    good: list  # (given, stored in get_config())


def _not_numbers(*extra):
    """Values that are not real numbers: refused wherever a number is required."""
    return [True, False, np.bool_(True), "0.5", 0.5 + 0j, complex(0.5, 0), [0.5], *extra]


_DECAY = Rule(
    bad=[-0.1, 1, 1.0, 1 - 1e-10, 1.5, math.nan, math.inf, BIG, np.float64(1.0), Fraction(1),
         *_not_numbers(None)],
    good=[(np.float32(0.75), 0.75), (Fraction(3, 4), 0.75), (decimal.Decimal("0.875"), 0.875),
          (np.float64(0.9), 0.9), (0.99999994, 0.99999994)],
)
_POSITIVE = Rule(  # clipnorm, clipvalue, global_clipnorm, loss_scale_factor: None or > 0
    bad=[0, 0.0, -1.0, math.nan, math.inf, 1e39, 1e-50, 1e-40, BIG, -BIG, *_not_numbers()],
    good=[(None, None), (np.float32(0.5), 0.5), (Fraction(1, 2), 0.5), (2, 2.0), (1e38, 1e38)],
)
_NON_NEGATIVE = Rule(
    bad=[-1e-8, math.inf, math.nan, 1e39, BIG, *_not_numbers(None)],
    good=[(0, 0.0), (np.float32(0.5), 0.5), (Fraction(1, 4), 0.25), (np.int64(2), 2.0)],
)
_BOOL = Rule(bad=[1, 0, 1.0, "True", None, np.int64(1)], good=[(np.bool_(True), True), (False, False)])

RULES = {
    "learning_rate": Rule(
        bad=[0, 0.0, -1e-3, math.nan, math.inf, -math.inf, 1e39, 1e-50, 1e-40, BIG, -BIG,
             np.float32("nan"), np.float64(0.0), Fraction(0), *_not_numbers(None)],
        good=[(1, 1.0), (np.float32(0.5), 0.5), (np.float64(0.01), 0.01), (Fraction(1, 8), 0.125),
              (decimal.Decimal("0.25"), 0.25), (3e38, 3e38)],
    ),
    "beta_1": _DECAY,
    "beta_2": _DECAY,
    "rho": _DECAY,
    "momentum": _DECAY,
    "epsilon": Rule(
        bad=[0, 0.0, 1e-300, 1e-40, 9e-31, -1e-8, math.inf, math.nan, 1e39, BIG,
             *_not_numbers(None)],
        good=[(MIN_EPSILON, MIN_EPSILON), (np.float32(0.25), 0.25), (Fraction(1, 1000), 0.001),
              (decimal.Decimal("1e-7"), 1e-7)],
    ),
    "initial_accumulator_value": _NON_NEGATIVE,
    "momentum_decay": _NON_NEGATIVE,
    "weight_decay": Rule(
        bad=[-1e-8, math.inf, math.nan, 1e39, BIG, *_not_numbers()],
        good=[(None, None), (0, 0.0), (np.float64(0.1), 0.1), (Fraction(1, 10), 0.1)],
    ),
    "bias_correction": _BOOL,
    "centered": _BOOL,
    "nesterov": _BOOL,
    "clipnorm": _POSITIVE,
    "clipvalue": _POSITIVE,
    "global_clipnorm": _POSITIVE,
    "loss_scale_factor": _POSITIVE,
    "use_ema": _BOOL,
    "ema_momentum": Rule(
        bad=[-0.1, 1.1, math.nan, math.inf, BIG, *_not_numbers(None)],
        good=[(0, 0.0), (1, 1.0), (np.float32(0.5), 0.5), (Fraction(1, 2), 0.5)],
    ),
    "ema_overwrite_frequency": Rule(
        bad=[0, -1, 1.5, 2.0, np.float64(3), True, "10", 2**63, BIG],
        good=[(None, None), (1, 1), (np.int64(3), 3)],
    ),
    "gradient_accumulation_steps": Rule(  # Keras itself refuses 1
        bad=[0, 1, -2, 2.0, 2.5, True, "2", 2**63, BIG],
        good=[(None, None), (2, 2), (np.int32(4), 4)],
    ),
    "name": Rule(bad=[1, b"adam", ["adam"]], good=[(None, ANY), ("my_optimizer", "my_optimizer")]),
}

# Rules of one class on top of the shared ones.
EXTRA_BAD = {
    # ρ∞ = 2/(1 − β2) − 1 must exceed 5 (β2 > 2/3), or RAdam never takes its rectified step.
    ("RAdam", "beta_2"): [0, 0.0, 0.5, 0.6, 2 / 3],
}
EXTRA_GOOD = {
    ("RAdam", "beta_2"): [(0.67, 0.67)],
}
# Other arguments a value needs to be valid with (Nesterov momentum needs momentum > 0).
CONTEXT = {("SGD", "nesterov"): {"momentum": 0.5}}


def _arguments(cls):
    params = inspect.signature(cls.__init__).parameters
    own = [name for name, p in params.items() if name != "self" and p.kind != p.VAR_KEYWORD]
    return own + [name for name in BASE_ARGUMENTS if name not in own]


CASES = [(cls, name) for cls in CLASSES for name in _arguments(cls)]
IDS = [f"{cls.__name__}-{name}" for cls, name in CASES]


def test_every_argument_has_a_rule():
    missing = [f"{cls.__name__}.{name}" for cls, name in CASES if name not in RULES]
    assert not missing, f"add a row to RULES (bad and good values) for {missing}"
    assert len(CLASSES) >= 13


@pytest.mark.parametrize("cls, name", CASES, ids=IDS)
def test_bad_value_is_refused_at_construction(cls, name):
    if name not in RULES:
        pytest.skip("no rule (test_every_argument_has_a_rule fails)")
    context = CONTEXT.get((cls.__name__, name), {})
    for value in RULES[name].bad + EXTRA_BAD.get((cls.__name__, name), []):
        with pytest.raises(ValueError) as info:
            cls(**{**context, name: value})
        message = str(info.value)
        assert message.startswith(f"Argument `{name}` must be "), message
        assert f"; received {name}={repr(value)[:24]}" in message, message


@pytest.mark.parametrize("cls, name", CASES, ids=IDS)
def test_good_value_is_stored_as_plain_python_and_reloads(cls, name):
    if name not in RULES:
        pytest.skip("no rule (test_every_argument_has_a_rule fails)")
    context = CONTEXT.get((cls.__name__, name), {})
    for given, stored in RULES[name].good + EXTRA_GOOD.get((cls.__name__, name), []):
        config = cls(**{**context, name: given}).get_config()
        if stored is not ANY:
            held = config[name]
            if name == "learning_rate":  # reported as the float32 it is held in
                stored = float(str(np.float32(stored)))
            assert held == stored and type(held) is type(stored), (given, held)
        text = json.dumps(config)  # JSON: no NumPy scalar or Fraction left
        rebuilt = cls.from_config(json.loads(text))
        assert rebuilt.get_config() == config


def test_huge_integer_is_named_not_an_overflow():
    with pytest.raises(ValueError, match=r"received learning_rate=100000.*\(401 characters\)"):
        kav.Adam(learning_rate=BIG)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_learning_rate_accepts_schedule_and_callable(cls):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    assert isinstance(cls(learning_rate=schedule).get_config()["learning_rate"], dict)
    assert cls(learning_rate=lambda: 0.1).learning_rate == 0.1


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_unknown_keyword_is_rejected_and_named(cls):
    with pytest.raises(ValueError, match=r"unknown keyword argument\(s\) \['bta_1'\]; allowed"):
        cls(bta_1=0.9)


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match=r"`nesterov=True` needs `momentum` in \(0, 1\)"):
        kav.SGD(nesterov=True)
    kav.SGD(momentum=0.5, nesterov=True)


def test_boundaries_that_are_allowed():
    kav.Adam(beta_1=0.0, beta_2=0.0, epsilon=MIN_EPSILON)
    kav.RMSprop(rho=0.0, momentum=0.0)
    kav.Adam(use_ema=True, ema_momentum=1.0, ema_overwrite_frequency=1)
    kav.Adam(learning_rate=FLOAT32_TINY)
    kav.RAdam(beta_2=0.6667)


# -- ε: refused where it keeps a denominator > 0 (see check_epsilon) --------------------------

def _floor_kwargs(cls, dtype):
    """The smallest ε (for Adagrad: ε = 0 and the smallest accumulator) allowed for ``dtype``.

    In float32 that is what the constructor accepts; in float16 the smallest positive float16,
    6e-8 (a smaller ε is refused when the optimizer is built).
    """
    floor = {"float32": MIN_EPSILON, "float16": 6e-8}[dtype]
    if cls is kav.Adagrad:
        return {"epsilon": 0.0, "initial_accumulator_value": max(floor, FLOAT32_TINY)}
    if "epsilon" in cls._HYPERPARAMETERS:
        return {"epsilon": floor}
    return {}


def test_adagrad_takes_epsilon_zero_only_with_a_positive_accumulator():
    with pytest.raises(ValueError, match=r"`epsilon` must be .*received epsilon=0.0"):
        kav.Adagrad(epsilon=0.0)
    with pytest.raises(ValueError, match=r"`epsilon` must be .*received epsilon=0.0"):
        kav.Adagrad(epsilon=0.0, initial_accumulator_value=1e-45)  # flushed to 0 in float32
    kav.Adagrad(epsilon=0.0, initial_accumulator_value=0.1)  # Keras' start: formulas coincide


def _apply(optimizer, variable, gradients, mode):
    def step(g):
        optimizer.apply_gradients([(g, variable)])

    if mode != "eager":
        step = tf.function(step, jit_compile=mode == "xla")
    for g in gradients:
        step(tf.constant(g, dtype=variable.dtype))


@pytest.mark.parametrize(
    "dtype, mode", [("float32", "eager"), ("float32", "function"), ("float32", "xla"),
                    ("float16", "eager"), ("float16", "xla")]
)
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_zero_gradient_gives_zero_step_at_the_smallest_epsilon(cls, dtype, mode):
    """Coordinates whose gradients are all 0 stay put (no 0/0 = NaN), past RAdam's 5th step."""
    kwargs = {**_floor_kwargs(cls, dtype), "weight_decay": 0.0}
    variable = keras.Variable(np.ones(4), dtype=dtype)
    gradients = [[0.0, 1.0, 0.0, -0.5]] * 8
    _apply(cls(learning_rate=0.01, **kwargs), variable, gradients, mode)
    values = variable.numpy().astype(np.float64)
    assert np.isfinite(values).all(), values
    assert values[0] == 1.0 and values[2] == 1.0, values
    if cls is not kav.Adadelta:  # whose first steps are √ε-sized: too small to see here
        assert values[1] < 1.0 and values[3] > 1.0, values


@pytest.mark.parametrize("cls", [c for c in CLASSES if c is not kav.SGD], ids=lambda c: c.__name__)
def test_epsilon_that_is_zero_in_the_variable_dtype_is_refused_at_build(cls):
    variable = keras.Variable(np.ones(3), dtype="float16")
    optimizer = cls(epsilon=1e-8)  # 0 in float16
    with pytest.raises(ValueError, match=r"`epsilon` must be nonzero .* 0 in float16 .*6e-08"):
        optimizer.apply_gradients([(tf.constant([0.0, 1.0, 0.0], "float16"), variable)])


# -- the variable and the gradient, at the step ------------------------------------------------

@pytest.mark.parametrize("mode", ["eager", "xla"])
@pytest.mark.parametrize("dtype", ["int32", "int64", "complex64"])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_integer_or_complex_variable_is_refused(cls, dtype, mode):
    variable = keras.Variable(np.ones(3), dtype=dtype)
    with pytest.raises(ValueError, match=rf"cannot update variable .* of dtype {dtype}: .*floating"):
        _apply(cls(), variable, [[1, 1, 1]], mode)
    np.testing.assert_array_equal(variable.numpy(), np.ones(3))


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_gradient_of_another_shape_is_refused(cls, mode):
    variable = keras.Variable(np.ones(3, np.float32))
    optimizer = cls()
    for shape in [(1,), (3, 1), (1, 3), (2,), ()]:
        with pytest.raises(ValueError, match=r"gradient of shape .* of shape \(3,\): a gradient must"):
            _apply(optimizer, variable, [np.ones(shape, np.float32)], mode)
    np.testing.assert_array_equal(variable.numpy(), np.ones(3))
    assert int(optimizer.iterations) == 0


@pytest.mark.parametrize("mode", ["eager", "function"])  # XLA: test_all_optimizers' sparse test
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_sparse_gradients_are_checked_and_still_work(cls, mode):
    table = keras.Variable(np.ones((5, 3), np.float32))
    optimizer = cls()

    def step(rows, dense_shape):  # Python tuples: static shapes when traced
        g = tf.IndexedSlices(tf.ones(rows), tf.constant([1, 3, 1]), tf.constant(dense_shape))
        optimizer.apply_gradients([(g, table)])

    if mode == "function":
        step = tf.function(step)
    step((3, 3), (5, 3))  # a good one, with a repeated row
    assert not np.allclose(table.numpy()[[1, 3]], 1.0)
    for rows, dense_shape in [((3, 4), (5, 4)), ((3, 3), (6, 3)), ((3, 3), (5,))]:
        with pytest.raises(ValueError, match=r"sparse gradient with .* of shape \(5, 3\)"):
            step(rows, dense_shape)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_complex_gradient_is_refused(cls):
    variable = keras.Variable(np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"gradient of dtype complex64 .* must be real"):
        cls().apply_gradients([(tf.constant([1 + 1j, 1, 1], tf.complex64), variable)])


# -- the registry --------------------------------------------------------------------------------

def test_get_is_case_insensitive_and_names_the_choices():
    assert kav.get("amsgrad") is kav.AMSGrad
    assert kav.get("AMSGrad") is kav.AMSGrad
    assert kav.get("RmsProp") is kav.RMSprop
    assert kav.get(kav.SGD) is kav.SGD
    with pytest.raises(ValueError, match=r"Unknown optimizer 'adamm': expected one of .*Adam"):
        kav.get("adamm")


def test_custom_objects_maps_registered_and_plain_names():
    objects = kav.custom_objects()
    for cls in CLASSES:
        assert objects[f"keras_adam_variants>{cls.__name__}"] is cls
        assert objects[cls.__name__] is cls
