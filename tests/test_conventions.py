"""Where a Keras built-in implements a different formula, show the documented difference.

Each case: on the standard gradient sequence (with magnitudes where ε matters) ours and the
Keras built-in differ far beyond float32 rounding, and as ε → 0 (with a matching accumulator
start), where the two formulas coincide, they agree to float32 accuracy. The package refuses
ε = 0 (a gradient of 0 would give 0/0, README "Bad input"), so the limit is taken at its smallest
ε, `MIN_EPSILON` = 1e-30: on gradients above 1e-7 ε then changes the step by less than 1e-20 of
itself, far below float32 resolution, while ε = 1e-8 changes it visibly.
"""

import keras
import numpy as np
import pytest

import keras_adam_variants as kav
from keras_adam_variants._validation import MIN_EPSILON
from tests.conftest import max_deviation, run_optimizer
from tests.test_all_optimizers import TOLERANCE

CASES = {
    # id: (ours(ε), keras(ε)), same learning rate on both sides (the defaults differ)
    "adam_eps_hat": (
        lambda eps: kav.Adam(epsilon=eps),
        lambda eps: keras.optimizers.Adam(epsilon=eps),
    ),
    "amsgrad_bias_corrected_vs_keras_amsgrad": (
        lambda eps: kav.AMSGrad(epsilon=eps, bias_correction=True),
        lambda eps: keras.optimizers.Adam(epsilon=eps, amsgrad=True),
    ),
    "rmsprop_eps_inside_root": (
        lambda eps: kav.RMSprop(epsilon=eps),
        lambda eps: keras.optimizers.RMSprop(epsilon=eps),
    ),
    "rmsprop_centered_eps_inside_root": (
        lambda eps: kav.RMSprop(epsilon=eps, centered=True),
        lambda eps: keras.optimizers.RMSprop(epsilon=eps, centered=True),
    ),
    "adagrad_eps_inside_root": (
        lambda eps: kav.Adagrad(learning_rate=0.01, epsilon=eps, initial_accumulator_value=0.0),
        lambda eps: keras.optimizers.Adagrad(
            learning_rate=0.01, epsilon=eps, initial_accumulator_value=0.0
        ),
    ),
    "adamax_eps_outside_max": (  # differs by ~ε/u per step: a large rate makes it visible
        lambda eps: kav.Adamax(learning_rate=0.1, epsilon=eps),
        lambda eps: keras.optimizers.Adamax(learning_rate=0.1, epsilon=eps),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_builtin_differs_where_eps_matters(case, theta0, grads):
    ours, theirs = CASES[case]
    deviation = max_deviation(
        run_optimizer(ours(1e-8), theta0, grads), run_optimizer(theirs(1e-8), theta0, grads)
    )
    assert deviation > 100 * TOLERANCE, deviation


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_builtin_agrees_when_the_formulas_coincide(case, theta0, grads):
    ours, theirs = CASES[case]
    nonzero = np.where(grads == 0, 1e-3, grads)  # ε → 0 needs gradients that are never 0
    nonzero = nonzero * np.where(np.abs(nonzero) < 1e-4, 1e4, 1.0)  # and well above underflow
    deviation = max_deviation(
        run_optimizer(ours(MIN_EPSILON), theta0, nonzero),
        run_optimizer(theirs(MIN_EPSILON), theta0, nonzero),
    )
    assert deviation < TOLERANCE, deviation


def test_amsgrad_forms_differ_and_paper_form_is_default(theta0, grads):
    paper = run_optimizer(kav.AMSGrad(), theta0, grads)
    corrected = run_optimizer(kav.AMSGrad(bias_correction=True), theta0, grads)
    assert max_deviation(paper, corrected) > 100 * TOLERANCE


def test_adagrad_default_accumulator_differs_from_keras(theta0, grads):
    g = np.abs(grads) + 1e-3
    ours = run_optimizer(kav.Adagrad(learning_rate=0.01, epsilon=MIN_EPSILON), theta0, g)
    theirs = run_optimizer(keras.optimizers.Adagrad(learning_rate=0.01, epsilon=0.0), theta0, g)
    assert max_deviation(ours, theirs) > 100 * TOLERANCE


def test_adagrad_equals_keras_with_its_accumulator_start_and_epsilon_zero(theta0, grads):
    """The docstring's claim: ``initial_accumulator_value=0.1`` and ε = 0 are Keras' Adagrad
    (ε = 0 is allowed here because √G ≥ √0.1 keeps the denominator positive)."""
    ours = kav.Adagrad(learning_rate=0.01, epsilon=0.0, initial_accumulator_value=0.1)
    theirs = keras.optimizers.Adagrad(learning_rate=0.01, epsilon=0.0)
    deviation = max_deviation(
        run_optimizer(ours, theta0, grads), run_optimizer(theirs, theta0, grads)
    )
    assert deviation < TOLERANCE, deviation
