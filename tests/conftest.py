"""Shared fixtures and helpers: the gradient sequence every optimizer is checked on, and runners
that apply it in eager mode, inside tf.function, with XLA, and through model.fit."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

STEPS = 120
# Column scales of the parameter matrix: large, ordinary, small, and around ε (1e-8 for the Adam
# family, 1e-10 for Adagrad), so that both the update and the placement of ε are exercised.
SCALES = np.array([1e2, 1.0, 1.0, 1e-2, 1e-4, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10])
MODES = ("eager", "function", "xla")


def gradient_sequence(steps=STEPS, rows=4, seed=0):
    """Gradients of mixed signs and scales with exact zeros: shape (steps, rows, len(SCALES)).

    About 15% of entries are exactly 0; the last row receives nothing but zeros for the first
    third of the steps (a parameter that starts to learn late).
    """
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((steps, rows, SCALES.size)) * SCALES
    g[rng.random(g.shape) < 0.15] = 0.0
    g[: steps // 3, -1, :] = 0.0
    return g.astype(np.float32)


def initial_theta(rows=4, seed=1):
    return np.random.default_rng(seed).standard_normal((rows, SCALES.size)).astype(np.float32)


@pytest.fixture(scope="session")
def grads():
    return gradient_sequence()


@pytest.fixture(scope="session")
def theta0():
    return initial_theta()


def run_optimizer(optimizer, theta0, grads, mode="eager", dtype="float32"):
    """Apply ``grads`` one step at a time; return the trajectory (steps + 1, *shape) as float64."""
    import keras
    import tensorflow as tf

    variable = keras.Variable(theta0.astype(dtype), dtype=dtype)
    optimizer.build([variable])

    def step(g):
        optimizer.apply_gradients([(g, variable)])

    if mode == "function":
        step = tf.function(step)
    elif mode == "xla":
        step = tf.function(step, jit_compile=True)
    elif mode != "eager":
        raise ValueError(mode)
    out = [np.asarray(variable.numpy(), np.float64)]
    for g in grads:
        step(tf.constant(g, dtype=dtype))
        out.append(np.asarray(variable.numpy(), np.float64))
    return np.stack(out)


def torch_trajectory(spec, theta0, grads):
    """The same gradients through the row's PyTorch optimizer, in float64 (the peer reference)."""
    import torch

    param = torch.nn.Parameter(torch.tensor(theta0, dtype=torch.float64))
    peer = spec.torch([param], spec.hyper())
    out = [param.detach().numpy().copy()]
    for g in grads:
        param.grad = torch.tensor(g, dtype=torch.float64)
        peer.step()
        out.append(param.detach().numpy().copy())
    return np.stack(out)


def probe_model(theta0):
    """A model whose one weight w receives exactly the input as its gradient.

    The output is sum(w * x) and the loss is the output itself, so with batches of one example
    d loss / d w = x: ``model.fit`` on a dataset of gradients replays them through the whole
    Keras training loop (compile, jit_compile, callbacks, LossScaleOptimizer, distribution).
    """
    import keras

    class Probe(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(
                shape=theta0.shape, initializer=keras.initializers.Constant(theta0), name="w"
            )

        def call(self, x):
            return keras.ops.sum(self.w * x, axis=tuple(range(1, len(theta0.shape) + 1)))

    inputs = keras.Input(theta0.shape)
    return keras.Model(inputs, Probe()(inputs))


def identity_loss(y_true, y_pred):
    return y_pred


def max_deviation(actual, expected):
    """max |actual − expected| / (1 + |expected|): float32 rounding is ~1e-7 on this scale."""
    return float(np.max(np.abs(actual - expected) / (1.0 + np.abs(expected))))


# -- several variables, some without a gradient at some steps (tests/test_skipped_gradients.py) --

MASKED_STEPS = 24
# Which of the three variables gets a gradient at each step: variable 1 first gets one at t = 5
# (its first update must use the global t) and then one step in three; variable 0 misses those
# steps; variable 2 misses others. Three row patterns only: tf.function traces once per pattern.
_MASK_ROWS = {"B": (1, 0, 1), "C": (1, 0, 0), "D": (0, 1, 1)}
_MASK_PLAN = "CBCBDBDCDBBDCBDDBCBDCDBB"
# How a variable without a gradient is given: variable 1 with a None gradient, variables 0 and 2
# left out of the list (the two ways Keras meets a frozen or unused part of a model).
_MISSING = ("omit", "none", "omit")


def skip_mask():
    """bool (MASKED_STEPS, 3): whether variable j gets a gradient at step t (row t − 1)."""
    return np.array([_MASK_ROWS[row] for row in _MASK_PLAN[:MASKED_STEPS]], bool)


def masked_problem(seed=7):
    """(thetas, grads) for three variables of shapes (4, 10), (10,), (2, 10): the matrix's
    column scales (around ε included), gradients with exact zeros; grads[j] has one gradient
    per step (those a variable does not get are simply not given to the optimizer)."""
    g = gradient_sequence(MASKED_STEPS, rows=7, seed=seed)
    theta = initial_theta(rows=7, seed=seed + 1)
    thetas = [theta[:4], theta[4], theta[5:]]
    grads = [g[:, :4], g[:, 4], g[:, 5:]]
    return thetas, grads


def run_masked(optimizer, thetas, grads, mask, mode="eager", dtype="float32"):
    """Apply the gradients where ``mask`` (steps, variables) says so; trajectories per variable.

    A variable without a gradient is passed with a ``None`` gradient or left out of
    `apply_gradients` (``_MISSING``: both happen). Returns one array (steps + 1, *shape) per
    variable, as float64.
    """
    import keras
    import tensorflow as tf

    variables = [keras.Variable(t.astype(dtype), dtype=dtype) for t in thetas]
    optimizer.build(variables)

    def step(gradients, pattern):
        pairs = []
        for g, variable, how in zip(gradients, variables, pattern):
            if how == "given":
                pairs.append((g, variable))
            elif how == "none":
                pairs.append((None, variable))
        optimizer.apply_gradients(pairs)

    if mode == "function":
        step = tf.function(step)
    elif mode == "xla":
        step = tf.function(step, jit_compile=True)
    elif mode != "eager":
        raise ValueError(mode)
    out = [[np.asarray(v.numpy(), np.float64)] for v in variables]
    for t, row in enumerate(mask, start=1):
        pattern = tuple("given" if given else how for given, how in zip(row, _MISSING))
        step([tf.constant(g[t - 1], dtype=dtype) for g in grads], pattern)
        for trajectory, v in zip(out, variables):
            trajectory.append(np.asarray(v.numpy(), np.float64))
    return [np.stack(trajectory) for trajectory in out]


def torch_masked(spec, thetas, grads, mask):
    """The same through the row's PyTorch optimizer (float64): a parameter whose ``.grad`` is
    None is skipped by ``step()``, and PyTorch counts steps per parameter. Final values."""
    import torch

    params = [torch.nn.Parameter(torch.tensor(t, dtype=torch.float64)) for t in thetas]
    peer = spec.torch(params, spec.hyper())
    for t, row in enumerate(mask):
        for p, g, given in zip(params, grads, row):
            p.grad = torch.tensor(g[t], dtype=torch.float64) if given else None
        peer.step()
    return [p.detach().numpy().copy() for p in params]
