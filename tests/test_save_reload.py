"""Every optimizer saves with its model to .keras and reloads in a fresh Python process, with
custom_objects and with only `import keras_adam_variants`, keeping its state (iterations and every
slot); the next training step then gives exactly the weights of the model that was never saved."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.specs import SPECS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="tanh"),
            keras.layers.Dense(3),
        ]
    )
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Train each optimizer 3 steps, save, then continue one step in memory."""
    directory = tmp_path_factory.mktemp("saved")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    np.savez(directory / "batch.npz", x=x[:8], y=y[:8])
    expected = {}
    for spec in SPECS:
        model = _model()
        model.compile(
            optimizer=spec.make(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        for _ in range(3):
            model.train_on_batch(x, y)
        model.save(directory / f"{spec.id}.keras")
        state = [v.numpy().copy() for v in model.optimizer.variables]
        model.train_on_batch(x[:8], y[:8])
        expected[spec.id] = (state, model.get_weights())
    for how in ("custom_objects", "import_only"):
        subprocess.run(
            [sys.executable, "-m", "tests._reload_child", str(directory), how],
            cwd=ROOT,
            check=True,
            timeout=600,
        )
    return directory, expected


@pytest.mark.parametrize("how", ["custom_objects", "import_only"])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_reload_in_fresh_process_keeps_state_and_continues_exactly(saved, spec, how):
    directory, expected = saved
    state, weights = expected[spec.id]
    result = np.load(directory / f"{spec.id}.keras.{how}.npz")
    assert str(result["class"]) == f"{spec.cls.__module__}.{spec.cls.__name__}"
    assert int(state[0]) == 3  # iterations
    slots = [result[f"opt_{i}"] for i in range(len(state))]
    assert len([k for k in result.files if k.startswith("opt_")]) == len(state)
    for before, after in zip(state, slots):
        np.testing.assert_array_equal(before, after)
    for i, w in enumerate(weights):
        np.testing.assert_array_equal(result[f"w_{i}"], w)
