"""Datasets through TFDS: the offline digits builder, the data order, the fast failure for a
catalogue dataset that is not prepared, and the workload registry."""

import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from experiments import datasets, workloads  # noqa: E402
from tests._experiment_helpers import digits_data_dir, run_train  # noqa: E402,F401


def test_digits_goes_through_tfds_prepare_and_read(digits_data_dir):
    from sklearn.datasets import load_digits

    from experiments.digits_builder import split_indices

    data = datasets.load("digits", data_dir=digits_data_dir)
    assert data.data_dir.startswith(digits_data_dir)
    files = os.listdir(data.data_dir)
    assert "dataset_info.json" in files and any(".tfrecord" in f for f in files)
    assert (data.num_train, data.num_test) == (1437, 360)
    assert data.input_shape == (8, 8, 1) and data.num_classes == 10

    # The split is the fixed stratified one, and the stored examples are scikit-learn's.
    digits = load_digits()
    train_idx, test_idx = split_indices()
    x_test = np.stack([x.numpy() for x, _ in data.test])
    y_test = np.array([int(y) for _, y in data.test])
    expected = {digits.images[i].astype(np.uint8).tobytes(): digits.target[i] for i in test_idx}
    assert sorted(expected.values()) == sorted(y_test.tolist())
    for x, y in zip(x_test, y_test):
        assert expected[x[..., 0].tobytes()] == y
    counts = np.bincount(y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 of each class

    # Preprocessed batches are float32 in [0, 1].
    x, y = next(iter(data.test_batches(64)))
    assert x.dtype.name == "float32" and float(x.numpy().max()) == 1.0 and x.shape[0] == 64


def test_epoch_order_depends_on_seed_and_epoch_only(digits_data_dir):
    data = datasets.load("digits", data_dir=digits_data_dir)

    def labels(seed, start, end):
        return [y.numpy() for _, y in data.train_batches(128, seed, start, end)]

    full = labels(0, 0, 3)
    resumed = labels(0, 2, 3)
    steps = data.steps_per_epoch(128)
    assert steps == 12 and len(full) == 3 * steps
    assert [len(b) for b in full[:steps]] == data.batch_sizes(128)  # no batch straddles epochs
    assert all(np.array_equal(a, b) for a, b in zip(full[2 * steps:], resumed))
    epoch0, epoch1 = np.concatenate(full[:steps]), np.concatenate(full[steps:2 * steps])
    assert not np.array_equal(epoch0, epoch1)  # reshuffled every epoch
    assert sorted(epoch0) == sorted(epoch1)  # each epoch is a permutation of the split
    assert not np.array_equal(epoch0, np.concatenate(labels(1, 0, 1)))  # the seed matters


def test_catalogue_dataset_not_prepared_fails_fast(tmp_path):
    start = time.monotonic()
    with pytest.raises(datasets.DatasetNotPreparedError) as err:
        datasets.load("mnist", data_dir=str(tmp_path))
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "'mnist'" in message and str(tmp_path) in message and "tfds build mnist" in message


def test_cli_reports_unprepared_dataset_without_traceback(tmp_path):
    start = time.monotonic()
    proc = run_train("--workload", "fashion_mnist_mlp", "--epochs", "1",
                     "--data-dir", tmp_path / "tfds", cwd=tmp_path, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr
    assert "fashion_mnist" in proc.stderr and "tfds build" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert elapsed < 60  # Python + TensorFlow import; TFDS alone would retry for minutes


def test_every_workload_builds_a_model_for_its_dataset():
    shapes = {"digits": (8, 8, 1), "mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1),
              "cifar10": (32, 32, 3), "imdb_reviews": (datasets.VOCAB_SIZE,)}
    assert {"digits_logreg", "digits_mlp", "digits_cnn", "mnist_cnn", "cifar10_cnn",
            "imdb_reviews_logreg", "imdb_reviews_mlp"} <= set(workloads.names())
    for name in workloads.names():
        workload = workloads.get(name)
        assert workload.dataset in datasets.names()
        model = workload.build_model(shapes[workload.dataset], 10)
        assert model.output_shape == (None, 10), name
