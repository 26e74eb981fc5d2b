"""Bias corrections exact to the variable's rounding, for β near 1 and any t.

1 − β^t computed as 1 − (β^t in float32) loses β's digits beyond float32: the first step of
Adam(1.0, β2=0.999, ε=0) on g = 1 was 0.9999933, with β2 = 0.99999 1.00068. Each optimizer with a
bias correction takes its first five steps, and one step at t = 10³ and t = 10⁵ from a zero state
(``iterations`` set to t − 1), and each step θ_t − θ_{t−1} is compared with the float64 reference
(the masked reference of tests/reference.py: steps before t are skipped, the state stays zero).
θ is reset to 0 before each step, so the step is read without the rounding of a larger θ and
decoupled weight decay (∝ θ) contributes nothing.

The fused TensorFlow kernels (float32 `Adam`, `AdamW`, dense `LazyAdam`, `AMSGrad` outside XLA)
take β, not 1 − β, in float32 and average with that rounded β; for them the reference is
evaluated with β rounded to float32 (β2 = 0.99999 is 0.99998999: a 0.14% different 1 − β2,
which at t = 10⁵ from a zero state moves the step by 3e-4). Their corrections are exact for it.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_adam_variants as kav
from tests import reference as ref

SHAPE = (4, 3)
LATE = (1_000, 100_000)
# (name, class and arguments, reference, sparse)
CASES = {
    "adam": (kav.Adam, {}, ref.adam),
    "adamw": (kav.AdamW, {}, ref.adamw),
    "amsgrad_bias_corrected": (kav.AMSGrad, dict(bias_correction=True), ref.amsgrad),
    "adamax": (kav.Adamax, {}, ref.adamax),
    "nadam": (kav.Nadam, {}, ref.nadam),
    "radam": (kav.RAdam, {}, ref.radam),
    "adabelief": (kav.AdaBelief, {}, ref.adabelief),
    "lazy_adam": (kav.LazyAdam, {}, ref.lazy_adam),
    "lazy_adam_sparse": (kav.LazyAdam, {}, ref.lazy_adam),
}
BETAS_ALL = [(0.9, 0.999), (0.9, 0.9999), (0.9, 0.99999), (0.9999, 0.99999)]
# Relative error of a step: float32 rounding is ~6e-8 per operation; the old float32 1 − β^t was
# off by 7e-6 (β2 = 0.999) to 7e-4 (β2 = 0.99999). bfloat16 keeps 8 bits (3.9e-3 per rounding).
TOLERANCE = {"float32": 2e-6, "bfloat16": 3e-2}


def _gradients(steps, seed=0):
    """Gradients of magnitude 1e-2..3, far above ε, with mixed signs: (steps, *SHAPE)."""
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 0.1, 0.01])
    return (rng.standard_normal((steps, *SHAPE)) * scale + 0.5 * scale).astype(np.float32)


def _sparse(g):
    """Rows 0, 2 (twice: summed) and 3 of a dense gradient as (indices, values)."""
    return np.array([0, 2, 2, 3]), np.stack([g[0], 0.5 * g[2], 0.5 * g[2], g[3]])


def _uses_kernel(name, mode, dtype):
    """Whether this update runs a fused TensorFlow kernel that takes β in float32."""
    if dtype != "float32":
        return False
    return name in ("adam", "adamw", "lazy_adam") or (
        name == "amsgrad_bias_corrected" and mode != "xla"
    )


def _steps_taken(name, betas, mode, dtype):
    """Our steps θ_t − θ_{t−1} at t = 1..5 and t in LATE, as float64 (len 7, *SHAPE)."""
    cls, kwargs, _ = CASES[name]
    optimizer = cls(learning_rate=1.0, beta_1=betas[0], beta_2=betas[1], **kwargs)
    variable = keras.Variable(np.zeros(SHAPE, dtype), dtype=dtype)
    optimizer.build([variable])
    state = [
        v for v in optimizer.variables
        if v is not optimizer.iterations and v is not optimizer._learning_rate
    ]
    sparse = name.endswith("_sparse")

    def step(g, indices):
        if indices is not None:  # g holds the slices' values
            g = tf.IndexedSlices(g, indices, tf.constant(SHAPE, "int64"))
        optimizer.apply_gradients([(g, variable)])

    if mode == "function":
        step = tf.function(step)
    elif mode == "xla":
        step = tf.function(step, jit_compile=True)
    out = []
    grads = _gradients(len(LATE) + 5)
    for t, g in enumerate(grads, start=1):
        if t > 5:  # a zero state at iterations = t − 1
            optimizer.iterations.assign(LATE[t - 6] - 1)
            for v in state:
                v.assign(np.zeros(v.shape, v.dtype))
        variable.assign(np.zeros(SHAPE, dtype))
        if sparse:
            indices, values = _sparse(g)
            step(tf.constant(values, dtype), tf.constant(indices, "int64"))
        else:
            step(tf.constant(g, dtype), None)
        out.append(np.asarray(variable.numpy(), np.float64))
    return np.stack(out)


def _expected(name, betas, rounded):
    """The float64 reference's steps at the same t (weight decay off: θ is 0 before each step)."""
    _, kwargs, reference = CASES[name]
    if rounded:
        betas = tuple(float(np.float32(b)) for b in betas)
    hyper = dict(learning_rate=1.0, beta_1=betas[0], beta_2=betas[1], weight_decay=0, **kwargs)
    grads = [g.astype(np.float64) for g in _gradients(len(LATE) + 5)]
    if name.endswith("_sparse"):
        grads = [_sparse(g) for g in grads]
    first = reference(np.zeros(SHAPE), grads[:5], **hyper)
    steps = list(np.diff(first, axis=0))
    for t, g in zip(LATE, grads[5:]):
        mask = np.zeros(t, bool)
        mask[-1] = True
        steps.append(reference(np.zeros(SHAPE), [None] * (t - 1) + [g], mask=mask, **hyper)[-1])
    return np.stack(steps)


def _relative_error(actual, expected):
    """Largest |actual − expected| relative to the step's size in that column (the columns have
    gradient scales 1, 0.1, 0.01); per step, the seven rows. A bias correction scales a whole
    step, so it shows in full; an element where m nearly cancels only shows float32 rounding."""
    scale = np.max(np.abs(expected), axis=1, keepdims=True)
    return np.max(np.abs(actual - expected) / scale, axis=(1, 2))


def _cases():
    for name in CASES:
        for dtype in ("float32", "bfloat16"):
            for betas in BETAS_ALL:
                yield name, betas, "eager", dtype
            for mode in ("function", "xla"):
                compiled = BETAS_ALL[::3] if dtype == "float32" else BETAS_ALL[3:]
                for betas in compiled:
                    yield name, betas, mode, dtype


@pytest.mark.parametrize(
    "name,betas,mode,dtype", list(_cases()), ids=lambda x: str(x).replace(" ", "")
)
def test_steps_match_float64(name, betas, mode, dtype):
    actual = _steps_taken(name, betas, mode, dtype)
    expected = _expected(name, betas, rounded=_uses_kernel(name, mode, dtype))
    assert np.all(np.isfinite(actual))
    errors = _relative_error(actual, expected)
    assert np.all(errors < TOLERANCE[dtype]), dict(zip([1, 2, 3, 4, 5, *LATE], errors.round(8)))


def test_issue_example_first_adam_step_is_exact():
    """Adam(1.0, β2, ε≈0) on g = 1: the first step is exactly 1, on every path.

    The issue's example has ε = 0, which the package now refuses (a zero gradient would give
    0/0); the smallest ε each dtype keeps is used instead, which the step cannot see: √v̂ = 1
    and 1 + ε rounds to 1 in that dtype."""
    smallest_epsilon = {"float32": 1e-30, "bfloat16": 1e-30, "float16": 6e-8}
    for beta_2 in (0.999, 0.99999):
        for dtype in ("float32", "float16", "bfloat16"):
            variable = keras.Variable(np.zeros(1, dtype), dtype=dtype)
            epsilon = smallest_epsilon[dtype]
            kav.Adam(1.0, beta_2=beta_2, epsilon=epsilon).apply_gradients(
                [(tf.constant([1.0], dtype), variable)]
            )
            assert float(variable.numpy()[0]) == -1.0, (beta_2, dtype)
