"""Where a Keras built-in implements a different formula, show the documented difference.

Each case: on the standard gradient sequence (with magnitudes where ε matters) ours and the
Keras built-in differ far beyond float32 rounding, and under the settings where the two formulas
coincide mathematically (ε = 0, matching accumulator start) they agree to float32 accuracy.
"""

import keras
import numpy as np
import pytest

import keras_adam_variants as kav
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
    nonzero = np.where(grads == 0, 1e-3, grads)  # ε = 0 needs gradients that are never 0
    nonzero = nonzero * np.where(np.abs(nonzero) < 1e-4, 1e4, 1.0)  # and well above underflow
    deviation = max_deviation(
        run_optimizer(ours(0.0), theta0, nonzero), run_optimizer(theirs(0.0), theta0, nonzero)
    )
    assert deviation < TOLERANCE, deviation


def test_amsgrad_forms_differ_and_paper_form_is_default(theta0, grads):
    paper = run_optimizer(kav.AMSGrad(), theta0, grads)
    corrected = run_optimizer(kav.AMSGrad(bias_correction=True), theta0, grads)
    assert max_deviation(paper, corrected) > 100 * TOLERANCE


def test_adagrad_default_accumulator_differs_from_keras(theta0, grads):
    ours = run_optimizer(kav.Adagrad(learning_rate=0.01, epsilon=0.0), theta0, np.abs(grads) + 1e-3)
    theirs = run_optimizer(keras.optimizers.Adagrad(learning_rate=0.01, epsilon=0.0), theta0, np.abs(grads) + 1e-3)
    assert max_deviation(ours, theirs) > 100 * TOLERANCE
