"""The Keras base-class features, each tested once through one optimizer (they are shared code):
schedules, callables, clipping, EMA, gradient accumulation, decoupled weight decay, loss scaling
and non-finite gradients, mixed precision with save and reload."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adam_variants as kav
from tests import reference as ref
from tests.conftest import max_deviation, run_optimizer
from tests.test_all_optimizers import TOLERANCE

STEPS = 40


@pytest.fixture
def g(grads):
    return grads[:STEPS]


def test_learning_rate_schedule(theta0, g):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.5)
    actual = run_optimizer(kav.Adam(learning_rate=schedule), theta0, g, "xla")
    # Keras evaluates the schedule at the iteration count before the step: t − 1.
    expected = ref.adam(theta0, g, learning_rate=lambda t: 0.01 * 0.5 ** ((t - 1) / 10))
    assert max_deviation(actual, expected) < TOLERANCE


def test_callable_learning_rate(theta0, g):
    actual = run_optimizer(kav.RMSprop(learning_rate=lambda: 0.005), theta0, g, "function")
    assert max_deviation(actual, ref.rmsprop(theta0, g, learning_rate=0.005)) < TOLERANCE


def test_clipnorm(theta0, g):
    actual = run_optimizer(kav.Adam(clipnorm=0.5), theta0, g, "xla")
    norms = np.sqrt(np.sum(g.astype(np.float64) ** 2, axis=(1, 2), keepdims=True))
    clipped = g * np.minimum(1.0, 0.5 / norms)
    assert max_deviation(actual, ref.adam(theta0, clipped)) < TOLERANCE
    assert max_deviation(actual, ref.adam(theta0, g)) > 100 * TOLERANCE


def test_clipvalue(theta0, g):
    actual = run_optimizer(kav.SGD(clipvalue=0.1), theta0, g, "xla")
    assert max_deviation(actual, ref.sgd(theta0, np.clip(g, -0.1, 0.1))) < TOLERANCE


def test_global_clipnorm_spans_variables(theta0, g):
    a, b = keras.Variable(theta0[:2]), keras.Variable(theta0[2:])
    optimizer = kav.Adagrad(global_clipnorm=1.0)
    for step in g:
        optimizer.apply_gradients([(tf.constant(step[:2]), a), (tf.constant(step[2:]), b)])
    norms = np.sqrt(np.sum(g.astype(np.float64) ** 2, axis=(1, 2), keepdims=True))
    expected = ref.adagrad(theta0, g * np.minimum(1.0, 1.0 / norms))[-1]
    actual = np.concatenate([a.numpy(), b.numpy()])
    assert max_deviation(actual, expected) < TOLERANCE


def test_exponential_moving_average(theta0, g):
    variable = keras.Variable(theta0)
    optimizer = kav.AMSGrad(learning_rate=0.01, use_ema=True, ema_momentum=0.9)
    for step in g:
        optimizer.apply_gradients([(tf.constant(step), variable)])
    optimizer.finalize_variable_values([variable])
    trajectory = ref.amsgrad(theta0, g, learning_rate=0.01)
    ema = trajectory[1]  # Keras starts the average at the first updated value
    for theta in trajectory[2:]:
        ema = 0.9 * ema + 0.1 * theta
    assert max_deviation(variable.numpy(), ema) < TOLERANCE


def test_gradient_accumulation(theta0, g):
    actual = run_optimizer(kav.Adamax(gradient_accumulation_steps=4), theta0, g, "xla")
    means = g.reshape(STEPS // 4, 4, *g.shape[1:]).astype(np.float64).mean(axis=1)
    expected = ref.adamax(theta0, means)
    assert max_deviation(actual[4::4], expected[1:]) < TOLERANCE
    np.testing.assert_array_equal(actual[1], actual[0])  # nothing moves between applications


def test_decoupled_weight_decay_is_pytorch_adamw(theta0, g):
    torch = pytest.importorskip("torch")
    actual = run_optimizer(kav.Adam(learning_rate=0.01, weight_decay=0.1), theta0, g, "xla")
    expected = ref.adam(theta0, g, learning_rate=0.01, weight_decay=0.1)
    assert max_deviation(actual, expected) < TOLERANCE
    param = torch.nn.Parameter(torch.tensor(theta0, dtype=torch.float64))
    adamw = torch.optim.AdamW([param], lr=0.01, eps=1e-8, weight_decay=0.1)
    for step in g:
        param.grad = torch.tensor(step, dtype=torch.float64)
        adamw.step()
    assert max_deviation(actual[-1], param.detach().numpy()) < TOLERANCE


def test_exclude_from_weight_decay(theta0, g):
    optimizer = kav.SGD(weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    bias = keras.Variable(theta0, name="bias")
    for step in g[:3]:
        optimizer.apply_gradients([(tf.constant(step), bias)])
    assert max_deviation(bias.numpy(), ref.sgd(theta0, g[:3])[-1]) < TOLERANCE


# -- non-finite gradients ----------------------------------------------------------------------


def _nan_gradient(theta0):
    g = np.ones_like(theta0)
    g[0, 0] = np.nan
    g[1, 1] = np.inf
    return tf.constant(g)


def test_plain_optimizer_does_not_hide_a_non_finite_gradient(theta0):
    """Documented behaviour: like Keras' and PyTorch's, a NaN/Inf gradient reaches the weights;
    nothing is silently absorbed. Use loss scaling (below) or clipping upstream to skip steps."""
    variable = keras.Variable(theta0)
    kav.Adam().apply_gradients([(_nan_gradient(theta0), variable)])
    assert not np.all(np.isfinite(variable.numpy()))


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_loss_scale_optimizer_skips_a_non_finite_step(theta0, mode):
    variable = keras.Variable(theta0)
    optimizer = keras.optimizers.LossScaleOptimizer(kav.Adam())
    optimizer.build([variable])
    apply = lambda grad: optimizer.apply_gradients([(grad, variable)])  # noqa: E731
    if mode == "xla":
        apply = tf.function(apply, jit_compile=True)
    apply(tf.constant(np.full_like(theta0, 0.5)))
    after_one = variable.numpy().copy()
    slots = [v.numpy().copy() for v in optimizer.inner_optimizer.variables]
    scale = float(optimizer.dynamic_scale.numpy())

    apply(_nan_gradient(theta0))
    np.testing.assert_array_equal(variable.numpy(), after_one)
    for before, now in zip(slots, optimizer.inner_optimizer.variables):
        np.testing.assert_array_equal(before, now.numpy())
        assert np.all(np.isfinite(now.numpy()))
    assert float(optimizer.dynamic_scale.numpy()) == scale / 2

    apply(tf.constant(np.full_like(theta0, 0.5)))
    assert int(optimizer.inner_optimizer.iterations.numpy()) == 2
    assert not np.array_equal(variable.numpy(), after_one)


# -- mixed precision ---------------------------------------------------------------------------


@pytest.fixture
def mixed_float16():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy(previous)


def test_mixed_float16_trains_and_survives_save_and_reload(mixed_float16, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8)).astype(np.float32)
    y = (x.sum(axis=1) > 0).astype(np.float32)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=kav.AMSGrad(learning_rate=0.01), loss="mse", jit_compile=True)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.layers[0].compute_dtype == "float16" and model.layers[0].kernel.dtype == "float32"
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=False)
    assert history.history["loss"][-1] < history.history["loss"][0]

    path = tmp_path / "mixed.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, custom_objects=kav.custom_objects())
    assert isinstance(reloaded.optimizer.inner_optimizer, kav.AMSGrad)
    for a, b in zip(model.optimizer.variables, reloaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    model.train_on_batch(x[:16], y[:16])
    reloaded.train_on_batch(x[:16], y[:16])
    for a, b in zip(model.get_weights(), reloaded.get_weights()):
        np.testing.assert_array_equal(a, b)
