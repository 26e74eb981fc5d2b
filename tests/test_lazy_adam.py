"""LazyAdam's sparse semantics: only touched rows of the weights and of both moments change, with
duplicates summed, as the NumPy lazy transcription in tests/reference.py; with gradients that
touch every row it is Adam. (Dense gradients: the generic matrix, row ``lazy_adam``.)"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adam_variants as kav
from tests import reference as ref
from tests.conftest import MODES, max_deviation

ROWS, DIM, STEPS = 50, 3, 100


def _batches(seed=4, size=8, every_row=False):
    rng = np.random.default_rng(seed)
    batches = []
    for step in range(STEPS):
        if every_row:
            ids = np.concatenate([rng.permutation(ROWS), rng.integers(0, ROWS, size)])
        else:
            # Rows 40-49 are never touched; low rows often, with duplicates in most batches.
            ids = np.minimum(rng.geometric(0.1, size) - 1, 39)
        batches.append(ids.astype(np.int64))
    return batches


def _train(optimizer, table, batches, weights, mode):
    variable = keras.Variable(table)

    def step(ids, w):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(variable.value, ids) * w)
        gradient = tape.gradient(loss, variable.value)
        optimizer.apply_gradients([(gradient, variable)])
        return isinstance(gradient, tf.IndexedSlices)

    if mode != "eager":
        step = tf.function(step, jit_compile=mode == "xla")
    for ids, w in zip(batches, weights):
        step(tf.constant(ids), tf.constant(w))
    return variable, optimizer


def _sparse_reference_grads(batches, weights):
    """(indices, values): d/dθ of sum(θ[ids] * w) is w[k] on row ids[k]."""
    return [(ids, w) for ids, w in zip(batches, weights)]


@pytest.mark.parametrize("mode", MODES)
def test_sparse_updates_match_the_lazy_reference(mode):
    rng = np.random.default_rng(5)
    table = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    batches = _batches()
    # Gradient values at mixed scales, as the generic sequence.
    weights = [
        (rng.standard_normal((len(ids), DIM)) * [1.0, 1e-3, 1e-7]).astype(np.float32)
        for ids in batches
    ]
    optimizer = kav.LazyAdam(learning_rate=0.01)
    variable, optimizer = _train(optimizer, table, batches, weights, mode)
    expected = ref.lazy_adam(table, _sparse_reference_grads(batches, weights), learning_rate=0.01)
    assert max_deviation(variable.numpy(), expected[-1]) < 1e-5
    # Untouched rows: weights and both moments exactly as they started.
    np.testing.assert_array_equal(variable.numpy()[40:], table[40:])
    m, v = optimizer._m[0].numpy(), optimizer._v[0].numpy()
    assert not m[40:].any() and not v[40:].any()
    assert m[:5].all() and v[:5].all()


def test_dense_adam_moves_untouched_rows_and_lazy_adam_does_not():
    rng = np.random.default_rng(6)
    table = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    batches = [np.array([0, 1, 1])] * 3 + [np.array([2])] * 3
    weights = [np.ones((len(ids), DIM), np.float32) for ids in batches]
    lazy, _ = _train(kav.LazyAdam(), table, batches, weights, "eager")
    dense, _ = _train(kav.Adam(), table, batches, weights, "eager")
    # Row 0 keeps moving under Adam after its last gradient (momentum); LazyAdam leaves it.
    assert not np.allclose(lazy.numpy()[0], dense.numpy()[0])
    np.testing.assert_allclose(lazy.numpy()[2], dense.numpy()[2], rtol=1e-6)


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_gradients_touching_every_row_equal_adam(mode):
    rng = np.random.default_rng(7)
    table = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    batches = _batches(every_row=True)[:30]
    weights = [rng.standard_normal((len(ids), DIM)).astype(np.float32) for ids in batches]
    lazy, _ = _train(kav.LazyAdam(learning_rate=0.01), table, batches, weights, mode)
    dense, _ = _train(kav.Adam(learning_rate=0.01), table, batches, weights, mode)
    # Float32 rounding only (Adam may run a fused kernel; duplicates are summed in another order):
    # the matrix's tolerance.
    assert max_deviation(lazy.numpy(), dense.numpy()) < 1e-5
    every_row = [(ids, w) for ids, w in zip(batches, weights)]
    expected = ref.adam(table, [_dense(ids, w) for ids, w in every_row], learning_rate=0.01)[-1]
    np.testing.assert_allclose(ref.lazy_adam(table, every_row, learning_rate=0.01)[-1], expected)
    assert max_deviation(lazy.numpy(), expected) < 1e-5


def _dense(ids, w):
    g = np.zeros((ROWS, DIM))
    np.add.at(g, ids, w)
    return g


def test_embedding_model_fit_with_xla():
    """The whole Keras loop: an Embedding's IndexedSlices gradient, jit_compile=True."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,), dtype="int32"), keras.layers.Embedding(ROWS, DIM), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    model.compile(optimizer=kav.LazyAdam(learning_rate=0.01), loss="mse", jit_compile=True)
    table = model.layers[0].embeddings.numpy().copy()
    x = np.random.default_rng(8).integers(0, 30, (64, 4)).astype(np.int32)
    model.fit(x, np.ones((64, 1), np.float32), batch_size=16, epochs=2, verbose=0)
    after = model.layers[0].embeddings.numpy()
    np.testing.assert_array_equal(after[30:], table[30:])  # never looked up
    assert np.all(np.any(after[np.unique(x)] != table[np.unique(x)], axis=1))
