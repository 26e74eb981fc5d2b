"""tf.distribute.MirroredStrategy over two logical CPU devices gives the same weights as one
device for the same global batches, for every optimizer of the matrix."""

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.specs import SPECS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("mirrored") / "weights.npz"
    subprocess.run(
        [sys.executable, "-m", "tests._mirrored_child", str(out)], cwd=ROOT, check=True, timeout=600
    )
    return np.load(out)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_mirrored_two_devices_equals_one(results, spec):
    steps_single, steps_multi = results[f"{spec.id}.steps"]
    assert steps_single == steps_multi == 8
    i = 0
    while f"{spec.id}.single.{i}" in results.files:
        single, multi = results[f"{spec.id}.single.{i}"], results[f"{spec.id}.mirrored.{i}"]
        np.testing.assert_allclose(multi, single, rtol=1e-5, atol=1e-6)
        i += 1
    assert i == 4  # two kernels and two biases
