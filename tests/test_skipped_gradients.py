"""Variables that get no gradient at some steps (a frozen branch, an unused head).

Keras' convention, which every optimizer follows: t counts `apply_gradients` calls
(``iterations``); a variable whose gradient is ``None`` or that is left out of the call is
untouched, slots included; its next update uses the global t. Every row of the matrix is run on
three variables that skip steps in both ways, against the masked NumPy reference, in eager mode,
tf.function and XLA; then against Keras' built-ins and PyTorch where they share the rule.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adam_variants as kav
from tests import reference as ref
from tests.conftest import (
    MODES,
    masked_problem,
    max_deviation,
    run_masked,
    skip_mask,
    torch_masked,
)
from tests.specs import SPECS
from tests.test_all_optimizers import TOLERANCE

pytestmark = pytest.mark.filterwarnings("ignore:Gradients do not exist")


def _deviation(actual, expected):
    return max(max_deviation(a, e) for a, e in zip(actual, expected))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
@pytest.mark.parametrize("mode", MODES)
def test_skipped_steps_match_masked_reference(spec, mode):
    thetas, grads = masked_problem()
    mask = skip_mask()
    optimizer = spec.make()
    actual = run_masked(optimizer, thetas, grads, mask, mode)
    expected = ref.masked(spec.reference, thetas, grads, mask, **spec.hyper(optimizer))
    assert int(optimizer.iterations.numpy()) == len(mask)
    for trajectory, column in zip(actual, mask.T):
        assert np.all(np.isfinite(trajectory))
        # Untouched exactly (bit for bit) at every step it gets no gradient.
        unchanged = np.all(trajectory[1:] == trajectory[:-1], axis=tuple(range(1, trajectory.ndim)))
        assert np.all(unchanged[~column])
    assert _deviation(actual, expected) < TOLERANCE


def test_nadam_issue_example():
    """The issue's case: Π_t follows the global t, as the formula and Keras' Nadam do."""
    results = []
    for optimizer in (
        kav.Nadam(learning_rate=0.1, epsilon=1e-7, momentum_decay=1.0),
        keras.optimizers.Nadam(learning_rate=0.1, epsilon=1e-7),
    ):
        a, b = keras.Variable([1.0, 1.0]), keras.Variable([1.0, 1.0])
        g = tf.constant([1.0, -2.0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimizer.apply_gradients([(g, a), (None, b)])
        optimizer.apply_gradients([(g, a), (g, b)])
        results.append(b.numpy())
    np.testing.assert_allclose(results[0], [0.89783, 1.10217], atol=1e-5)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.keras], ids=lambda s: s.id)
def test_skipped_steps_match_keras_builtin(spec):
    """Keras' built-ins of the same rule (Adadelta, SGD, Nadam with ψ = 1) skip the same way."""
    thetas, grads = masked_problem()
    mask = skip_mask()
    theirs = run_masked(spec.keras(spec.hyper()), thetas, grads, mask, "function")
    ours = run_masked(spec.make(), thetas, grads, mask, "function")
    assert _deviation(ours, theirs) < TOLERANCE


@pytest.mark.parametrize("spec", [s for s in SPECS if s.torch], ids=lambda s: s.id)
def test_pytorch_counts_steps_per_parameter(spec):
    """PyTorch skips a parameter whose .grad is None, but keeps its step count per parameter:
    it equals our reference run on that parameter's own steps (t = 1, 2, … of its updates).
    Where the rule has no t (RMSprop, Adagrad, Adadelta, SGD) that is our update too; where it
    does (Adam's family, Nadam, RAdam) PyTorch differs from Keras' convention, which we follow."""
    pytest.importorskip("torch")
    thetas, grads = masked_problem()
    mask = skip_mask()
    hyper = spec.hyper()
    theirs = torch_masked(spec, thetas, grads, mask)
    per_parameter = [
        spec.reference(theta, g[column], **hyper)[-1]
        for theta, g, column in zip(thetas, grads, mask.T)
    ]
    assert _deviation(theirs, per_parameter) < TOLERANCE
    # Ours is the masked reference (test above), with the global t.
    ours = [t[-1] for t in ref.masked(spec.reference, thetas, grads, mask, **hyper)]
    time_free = spec.cls in (kav.RMSprop, kav.Adagrad, kav.Adadelta, kav.SGD)
    if time_free:
        assert _deviation(ours, theirs) < TOLERANCE
    else:  # variable 1 first updates at t = 5: PyTorch's t = 1 there
        assert max_deviation(ours[1], theirs[1]) > 10 * TOLERANCE


def test_nadam_loads_state_saved_with_per_variable_products():
    """Nadam once kept Π in one slot per variable, saved after m and v: such a save still loads
    (the products dropped), instead of Keras skipping the whole optimizer state."""
    variables = [keras.Variable(np.ones(3, "float32")), keras.Variable(np.ones((2, 2), "float32"))]
    saved = kav.Nadam()
    for _ in range(3):
        saved.apply_gradients([(tf.ones(v.shape), v) for v in variables])
    store = {}
    saved.save_own_variables(store)
    n = len(store)
    store.update({str(n + i): np.float32(0.5) for i in range(len(variables))})  # the old slots
    loaded = kav.Nadam()
    loaded.build(variables)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded.load_own_variables(store)
    for a, b in zip(saved.variables, loaded.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
