"""effective_learning_rate and effective_step of every optimizer, against NumPy float64 states.

The rates are recomputed here from each paper's state (plain loops, as tests/reference.py, sharing
nothing with the package); the steps are checked against the reference trajectories: for every
row of the matrix, the effective step after T steps (given the T-th gradient where the optimizer
needs it) is the reference's θ_{T-1} − θ_T.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adam_variants as kav
from tests.specs import SPECS

T = 40


def _rates(name, grads, h):
    """The per-parameter effective rate after len(grads) steps, from the paper's state."""
    t = len(grads)
    lr = h["learning_rate"]
    g = np.asarray(grads, np.float64)
    z = np.zeros_like(g[0])
    if name in ("Adam", "AdamW", "LazyAdam", "Nadam", "RAdam"):
        v = z.copy()
        for gi in g:
            v = h["beta_2"] * v + (1 - h["beta_2"]) * gi * gi
        if name == "RAdam":
            rho_inf = 2 / (1 - h["beta_2"]) - 1
            rho = rho_inf - 2 * t * h["beta_2"] ** t / (1 - h["beta_2"] ** t)
            if rho <= 5:
                return np.full_like(z, lr)
            r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
            return lr * r * np.sqrt(1 - h["beta_2"] ** t) / (np.sqrt(v) + h["epsilon"])
        return lr / (np.sqrt(v / (1 - h["beta_2"] ** t)) + h["epsilon"])
    if name == "AMSGrad":
        v, v_max = z.copy(), z.copy()
        for gi in g:
            v = h["beta_2"] * v + (1 - h["beta_2"]) * gi * gi
            v_max = np.maximum(v_max, v)
        if h["bias_correction"]:
            v_max = v_max / (1 - h["beta_2"] ** t)
        return lr / (np.sqrt(v_max) + h["epsilon"])
    if name == "RMSprop":
        e, mean = z.copy(), z.copy()
        for gi in g:
            e = h["rho"] * e + (1 - h["rho"]) * gi * gi
            mean = h["rho"] * mean + (1 - h["rho"]) * gi
        if h["centered"]:
            e = np.maximum(e - mean * mean, 0)
        return lr / (np.sqrt(e) + h["epsilon"])
    if name == "Adagrad":
        return lr / (np.sqrt(h["initial_accumulator_value"] + np.sum(g * g, axis=0)) + h["epsilon"])
    if name == "Adadelta":
        eg, edx = z.copy(), z.copy()
        for gi in g:
            eg = h["rho"] * eg + (1 - h["rho"]) * gi * gi
            dx = np.sqrt(edx + h["epsilon"]) / np.sqrt(eg + h["epsilon"]) * gi
            edx = h["rho"] * edx + (1 - h["rho"]) * dx * dx
        return lr * np.sqrt(edx + h["epsilon"]) / np.sqrt(eg + h["epsilon"])
    if name == "Adamax":
        u = z.copy()
        for gi in g:
            u = np.maximum(h["beta_2"] * u, np.abs(gi) + h["epsilon"])
        return lr / ((1 - h["beta_1"] ** t) * u)
    if name == "AdaBelief":
        m, s = z.copy(), z.copy()
        for gi in g:
            m = h["beta_1"] * m + (1 - h["beta_1"]) * gi
            s = h["beta_2"] * s + (1 - h["beta_2"]) * (gi - m) ** 2 + h["epsilon"]
        return lr / (np.sqrt(s / (1 - h["beta_2"] ** t)) + h["epsilon"])
    if name == "Yogi":
        v = np.full_like(z, h["initial_accumulator_value"])
        for gi in g:
            v = v - (1 - h["beta_2"]) * np.sign(v - gi * gi) * gi * gi
        return lr / (np.sqrt(v) + h["epsilon"])
    if name == "SGD":
        return np.full_like(z, lr)
    raise AssertionError(f"no reference rate for {name}")


def _trained(spec, theta0, grads, steps=T):
    overrides = {"weight_decay": 0.0} if "weight_decay" in spec.cls._HYPERPARAMETERS else {}
    optimizer = spec.make(**overrides)
    variable = keras.Variable(theta0)
    for g in grads[:steps]:
        optimizer.apply_gradients([(tf.constant(g), variable)])
    return optimizer, variable, spec.hyper(optimizer)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_effective_learning_rate_matches_the_papers_state(spec, theta0, grads):
    optimizer, variable, h = _trained(spec, theta0, grads)
    actual = optimizer.effective_learning_rate(variable).numpy()
    expected = _rates(spec.cls.__name__, grads[:T], h)
    assert actual.shape == theta0.shape and actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, rtol=2e-4)
    # Reading it changes nothing.
    before = [v.numpy().copy() for v in optimizer.variables]
    optimizer.effective_step(variable, grads[T - 1])
    for a, b in zip(before, optimizer.variables):
        np.testing.assert_array_equal(a, b.numpy())


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_effective_step_is_the_last_step_taken(spec, theta0, grads):
    if spec.cls is kav.Adadelta:
        pytest.skip("Adadelta's rate reads E[Δ²] after the step: checked in the test below")
    optimizer, variable, h = _trained(spec, theta0, grads)
    trajectory = spec.reference(theta0, grads[:T], **h)
    expected = trajectory[T - 1] - trajectory[T]
    actual = optimizer.effective_step(variable, tf.constant(grads[T - 1])).numpy()
    scale = np.max(np.abs(expected))
    assert np.max(np.abs(actual - expected)) <= 1e-4 * scale


def test_adadelta_effective_step_is_rate_times_gradient(theta0, grads):
    optimizer = kav.Adadelta()
    variable = keras.Variable(theta0)
    for g in grads[:T]:
        optimizer.apply_gradients([(tf.constant(g), variable)])
    g = grads[T]
    np.testing.assert_allclose(
        optimizer.effective_step(variable, g).numpy(),
        optimizer.effective_learning_rate(variable).numpy() * g,
        rtol=1e-6,
    )


@pytest.mark.parametrize("cls", [kav.Adagrad, kav.RMSprop, kav.Nadam, kav.SGD, kav.Adadelta])
def test_effective_step_asks_for_the_gradient_where_it_needs_it(cls):
    variable = keras.Variable(np.ones((2, 2), np.float32))
    optimizer = cls()
    optimizer.build([variable])
    with pytest.raises(ValueError, match=r"depends on the current gradient.*effective_step\(variable, gradient\)"):
        optimizer.effective_step(variable)


@pytest.mark.parametrize("cls", [kav.AMSGrad, kav.Adagrad])
def test_amsgrad_and_adagrad_rates_never_increase(cls, theta0, grads):
    """The seed's §3 claims, elementwise, over the whole gradient sequence (constant lr)."""
    optimizer = cls()
    variable = keras.Variable(theta0)
    step = tf.function(lambda g: optimizer.apply_gradients([(g, variable)]))
    rate = tf.function(lambda: optimizer.effective_learning_rate(variable))
    previous = None
    for g in grads:
        step(tf.constant(g))
        current = rate().numpy()
        if previous is not None:
            assert np.all(current <= previous)
        previous = current


def test_effective_rates_compile_with_xla(theta0, grads):
    optimizer = kav.RAdam()
    variable = keras.Variable(theta0)
    for g in grads[:10]:
        optimizer.apply_gradients([(tf.constant(g), variable)])
    compiled = tf.function(
        lambda: (optimizer.effective_learning_rate(variable), optimizer.effective_step(variable)),
        jit_compile=True,
    )
    rate, step = compiled()
    np.testing.assert_allclose(rate.numpy(), optimizer.effective_learning_rate(variable).numpy(), rtol=1e-6)
    np.testing.assert_allclose(step.numpy(), optimizer.effective_step(variable).numpy(), rtol=1e-6)
