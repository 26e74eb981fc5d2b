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
