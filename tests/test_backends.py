"""The optimizer matrix on JAX and PyTorch, the other two Keras 3 backends.

KERAS_BACKEND is fixed per process, so each backend runs tests/_backend_child.py in its own
process (both at once), over every row of tests/specs.py: reference agreement eagerly and in
model.fit's compiled step, config round trip, `.keras` save/reload-continue, an `Embedding`
trained by model.fit, and effective_step/effective_learning_rate. TensorFlow runs the same checks
(and more) in process, in tests/test_all_optimizers.py, test_save_reload.py and
test_effective_lr.py; here its effective learning rates are the reference the other backends'
are compared with.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests._experiment_helpers import REPO, env
from tests.conftest import gradient_sequence, initial_theta
from tests.specs import SPECS

BACKENDS = ("jax", "torch")
CHECKS = ("eager", "jit", "config", "save", "embedding", "effective")
_RESULTS = {}


def _start(backend, out):
    pytest.importorskip(backend)
    return subprocess.Popen(
        [sys.executable, "-m", "tests._backend_child", str(out)], cwd=REPO,
        env=env(KERAS_BACKEND=backend), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """{backend: the child's JSON}, both children run concurrently once per module."""
    if not _RESULTS:
        directory = tmp_path_factory.mktemp("backends")
        children = {}
        for backend in BACKENDS:
            try:
                children[backend] = _start(backend, directory / f"{backend}.json")
            except pytest.skip.Exception as skip:
                _RESULTS[backend] = skip
        for backend, child in children.items():
            output, _ = child.communicate(timeout=600)
            path = directory / f"{backend}.json"
            if child.returncode != 0 or not path.exists():
                _RESULTS[backend] = AssertionError(f"{backend} child failed:\n{output[-4000:]}")
            else:
                _RESULTS[backend] = json.loads(path.read_text())
    return _RESULTS


def _result(matrix, backend):
    result = matrix[backend]
    if isinstance(result, pytest.skip.Exception):
        pytest.skip(str(result))
    if isinstance(result, Exception):
        raise result
    assert result["backend"] == backend
    return result


@pytest.mark.slow
@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_row_passes(matrix, backend, check):
    result = _result(matrix, backend)
    assert set(result["results"]) == {s.id for s in SPECS}  # every row ran
    failures = {row: checks[check] for row, checks in result["results"].items() if checks[check] != "ok"}
    assert not failures, json.dumps(failures, indent=1)


@pytest.mark.slow
@pytest.mark.parametrize("callback", ("AdaptiveLRLogger", "MlflowLogger"))
@pytest.mark.parametrize("backend", BACKENDS)
def test_callbacks_work(matrix, backend, callback):
    """On JAX, AdaptiveLRLogger runs ``ADAPTIVE_LR_FITS`` fits (its old donated-buffer race failed
    most children) and, on both, only fit's thread may read the callback's model."""
    result = _result(matrix, backend)["callbacks"][callback]
    assert result == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_effective_learning_rate_agrees_with_tensorflow(matrix, backend):
    """Same state, same rate: the TensorFlow value is checked against each paper's state in
    tests/test_effective_lr.py."""
    result = _result(matrix, backend)
    from tests._backend_child import STEPS

    theta0, grads = initial_theta(), gradient_sequence()[:STEPS]
    for spec in SPECS:
        overrides = {"weight_decay": 0.0} if "weight_decay" in spec.cls._HYPERPARAMETERS else {}
        optimizer = spec.make(**overrides)
        variable = keras.Variable(theta0)
        for g in grads:
            optimizer.apply_gradients([(tf.constant(g), variable)])
        expected = optimizer.effective_learning_rate(variable).numpy()
        np.testing.assert_allclose(np.asarray(result["effective_lr"][spec.id]), expected, rtol=2e-4,
                                   err_msg=f"{backend} / {spec.id}")


def test_the_child_reports_a_failure(tmp_path):
    """A row that fails on a backend is reported, not lost: the checks can fail."""
    import tests._backend_child as child

    out = tmp_path / "tf.json"
    original = SPECS[0].reference
    try:
        object.__setattr__(SPECS[0], "reference", lambda theta, g, **h: original(theta, g * 2, **h))
        child.main([str(out), SPECS[0].id])
    finally:
        object.__setattr__(SPECS[0], "reference", original)
    result = json.loads(out.read_text())["results"][SPECS[0].id]
    assert result["eager"].startswith("AssertionError: max deviation")
    assert result["config"] == "ok"
    assert os.path.exists(out)
