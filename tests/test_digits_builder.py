"""The offline `digits` dataset: one name (CLI and TFDS), its TFDS metadata, quiet preparation
(no download-looking lines), data dirs prepared under the former name, and the schema MLflow logs."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from experiments import datasets
from tests._experiment_helpers import digits_data_dir, env  # noqa: F401


def test_one_name_and_full_metadata(digits_data_dir):
    data = datasets.load("digits", data_dir=digits_data_dir)
    assert data.spec.name == data.spec.tfds_name == data.builder.name == "digits"
    assert data.data_dir.endswith(os.path.join("digits", "1.0.0"))
    info = json.loads(open(os.path.join(data.data_dir, "dataset_info.json")).read())
    assert info["name"] == "digits"
    assert "Alpaydin" in info["citation"] and "10.24432/C50P49" in info["citation"]
    assert info["location"]["urls"] == [
        "https://scikit-learn.org/stable/datasets/toy_dataset.html"
        "#optical-recognition-of-handwritten-digits-dataset"]
    assert "Optical Recognition of Handwritten Digits" in info["description"]
    license_text = open(os.path.join(data.data_dir, "LICENSE")).read()
    assert "CC BY 4.0" in license_text


def test_logged_schema_is_per_example(digits_data_dir):
    pytest.importorskip("mlflow")
    data = datasets.load("digits", data_dir=digits_data_dir)
    train = datasets.mlflow_dataset(data, "train")
    schema = train.schema.to_dict()["mlflow_tensorspec"]
    features, targets = json.loads(schema["features"])[0], json.loads(schema["targets"])[0]
    assert features["tensor-spec"] == {"dtype": "uint8", "shape": [-1, 8, 8, 1]}
    assert targets["tensor-spec"] == {"dtype": "int64", "shape": [-1]}
    assert train.profile["features_shape"] == (1437, 8, 8, 1)
    test = datasets.mlflow_dataset(data, "test")
    assert test.profile["targets_shape"] == (360,) and test.name == "digits-test"
    assert test.digest != train.digest
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        datasets.mlflow_dataset(data, "validation")


@pytest.mark.slow
def test_preparation_is_quiet_and_moves_on_from_the_former_name(tmp_path):
    """A fresh prepare with INFO logging on (as the runner has): no "Downloading ... Unknown size",
    no TFDS info lines; a data dir holding the former ``sklearn_digits`` gets one line about it."""
    (tmp_path / "sklearn_digits" / "1.0.0").mkdir(parents=True)
    script = textwrap.dedent(f"""
        import logging
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        from experiments import datasets
        for _ in range(2):
            data = datasets.load("digits", data_dir={str(tmp_path)!r})
            data.sample(4)
        print("EXAMPLES", data.num_train, data.num_test)
    """)
    out = subprocess.run([sys.executable, "-c", script], env=env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    assert "EXAMPLES 1437 360" in out.stdout
    for noise in ("Download", "Unknown size", "absl: ", "Constructing tf.data", "dataset_info.json"):
        assert noise not in text, (noise, text)
    ours = [line for line in text.splitlines() if line.startswith("experiments.datasets:")]
    assert len(ours) == 2, ours  # the former-name note, then "preparing" -- once, not per load
    assert "former TFDS name 'sklearn_digits'" in ours[0] and "preparing dataset 'digits'" in ours[1]
    assert (tmp_path / "digits" / "1.0.0" / "dataset_info.json").exists()
