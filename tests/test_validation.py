"""Bad input gets a clear ValueError that names the argument, the allowed range and the value."""

import math

import keras
import pytest

import keras_adam_variants as kav
from tests.specs import SPECS

CLASSES = sorted({s.cls for s in SPECS}, key=lambda c: c.__name__)

# Bad values by the kind of hyperparameter; each entry is (value, what the message must show).
BAD = {
    "decay_rate": [-0.1, 1.0, 1.5, math.nan, "0.9", None],  # beta_1, beta_2, rho, momentum: [0, 1)
    "non_negative": [-1e-8, math.inf, math.nan, "1e-8", None],  # epsilon, accumulator: >= 0
    "bool": [1, "yes", None],
}
KIND = {
    "beta_1": "decay_rate",
    "beta_2": "decay_rate",
    "rho": "decay_rate",
    "momentum": "decay_rate",
    "epsilon": "non_negative",
    "initial_accumulator_value": "non_negative",
    "momentum_decay": "non_negative",  # Nadam
    "weight_decay": "non_negative",  # AdamW, where it is a hyperparameter (default 0.01)
    "bias_correction": "bool",
    "centered": "bool",
    "nesterov": "bool",
}


def _cases():
    for cls in CLASSES:
        for name in cls._HYPERPARAMETERS:
            if name not in KIND:
                continue  # reported by test_every_hyperparameter_has_a_bad_input_case
            for value in BAD[KIND[name]]:
                yield pytest.param(cls, name, value, id=f"{cls.__name__}-{name}={value!r}")


@pytest.mark.parametrize("cls, name, value", list(_cases()))
def test_bad_hyperparameter_is_named_with_range_and_value(cls, name, value):
    with pytest.raises(ValueError) as info:
        cls(**{name: value})
    message = str(info.value)
    assert f"`{name}`" in message
    assert f"{name}={value!r}" in message
    assert ("[" in message and ")" in message) or "True or False" in message or ">=" in message


def test_every_hyperparameter_has_a_bad_input_case():
    for cls in CLASSES:
        for name in cls._HYPERPARAMETERS:
            assert name in KIND, f"{cls.__name__}.{name}: add its kind to KIND (bad-input cases)"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("value", [0.0, -1e-3, math.nan, math.inf, "fast", None])
def test_bad_learning_rate(cls, value):
    with pytest.raises(ValueError, match=r"`learning_rate` must be .* received learning_rate="):
        cls(learning_rate=value)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_learning_rate_accepts_int_schedule_and_callable(cls):
    assert cls(learning_rate=1).get_config()["learning_rate"] == 1.0
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    assert isinstance(cls(learning_rate=schedule).get_config()["learning_rate"], dict)
    assert cls(learning_rate=lambda: 0.1).learning_rate == 0.1


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_unknown_keyword_is_rejected_and_named(cls):
    with pytest.raises(ValueError, match=r"unknown keyword argument\(s\) \['bta_1'\]; allowed"):
        cls(bta_1=0.9)


def test_negative_weight_decay_is_rejected():
    with pytest.raises(ValueError, match=r"`weight_decay` must be a finite number >= 0"):
        kav.Adam(weight_decay=-0.1)


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match=r"`nesterov=True` needs `momentum` in \(0, 1\)"):
        kav.SGD(nesterov=True)
    kav.SGD(momentum=0.5, nesterov=True)


def test_boundaries_that_are_allowed():
    kav.Adam(beta_1=0.0, beta_2=0.0, epsilon=0.0)
    kav.RMSprop(rho=0.0, momentum=0.0)
    kav.Adagrad(initial_accumulator_value=0.0, epsilon=0.0)


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
