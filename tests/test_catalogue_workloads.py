"""Every catalogue workload trains one epoch through the real input pipeline, offline.

There is no network here, so the catalogue datasets (MNIST, Fashion-MNIST, CIFAR-10, IMDB reviews)
are stood in for by ``tfds.testing.mock_data``: random examples drawn from the *real* builder's
features (TFDS's own builder code: image shapes and dtypes, label classes, review text). The data
dir holds what a prepared dataset's directory holds apart from its record files
(``dataset_info.json`` and ``features.json`` written from the real ``DatasetInfo``, with splits of
``N`` examples), so ``experiments.datasets.load`` takes its ordinary path: the prepared-dataset
check, ``as_dataset``, the cache, the in-memory shuffle, preprocessing (image scaling, IMDB's bag of
words). Each workload's model then trains one epoch and validates on the test split.

What this cannot show: anything about the real pixels or reviews (the values are random).
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from experiments import datasets, workloads  # noqa: E402

N = 40       # examples per split: batches of 16, 16 and a partial 8
BATCH = 16

# The catalogue's real features (from TFDS's documentation), checked against what the builder says.
REAL = {
    "mnist": ((28, 28, 1), 10),
    "fashion_mnist": ((28, 28, 1), 10),
    "cifar10": ((32, 32, 3), 10),
    "imdb_reviews": ((datasets.VOCAB_SIZE,), 2),
}

CATALOGUE = sorted(w for w in workloads.names() if workloads.get(w).dataset in REAL)


def test_every_catalogue_dataset_has_a_workload_here():
    assert {workloads.get(w).dataset for w in CATALOGUE} == set(REAL)
    assert {w for w in workloads.names() if not w.startswith("digits_")} == set(CATALOGUE)


def _write_metadata(builder, n):
    """Write ``builder``'s real DatasetInfo with train/test splits of ``n`` examples."""
    import tensorflow_datasets as tfds

    def split(name):
        template = tfds.core.naming.ShardedFileTemplate(
            data_dir=builder.data_dir, dataset_name=builder.name, split=name,
            filetype_suffix="tfrecord")
        return tfds.core.SplitInfo(name=name, shard_lengths=[n], num_bytes=0,
                                   filename_template=template)

    builder.info.set_splits(tfds.core.SplitDict([split("train"), split("test")]))
    os.makedirs(builder.data_dir, exist_ok=True)
    builder.info.write_to_directory(builder.data_dir)


@pytest.fixture(scope="module")
def mocked_catalogue(tmp_path_factory):
    """A TFDS data dir with the four catalogue datasets' metadata, TFDS mocked to read from it."""
    import tensorflow_datasets as tfds

    root = str(tmp_path_factory.mktemp("tfds"))
    for name in REAL:
        _write_metadata(tfds.builder(datasets.get(name).tfds_name, data_dir=root), N)
    with tfds.testing.mock_data(num_examples=N, policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=root):
        yield root, {}


def _load(mocked_catalogue, name):
    root, loaded = mocked_catalogue
    if name not in loaded:
        loaded[name] = datasets.load(name, data_dir=root)
    return loaded[name]


@pytest.mark.slow
@pytest.mark.parametrize("workload", CATALOGUE)
def test_catalogue_workload_trains_one_epoch(mocked_catalogue, workload):
    import keras

    import keras_adam_variants as kav

    wl = workloads.get(workload)
    data = _load(mocked_catalogue, wl.dataset)
    shape, classes = REAL[wl.dataset]
    assert (data.input_shape, data.num_classes) == (shape, classes)
    assert (data.num_train, data.num_test) == (N, N)

    # One epoch of the training pipeline: each example once, in batches of the documented sizes,
    # float32 model input of the model's shape, labels within the classes.
    steps = data.steps_per_epoch(BATCH)
    batches = list(data.train_batches(BATCH, seed=0, start_epoch=0, end_epoch=1))
    assert [len(y) for _, y in batches] == data.batch_sizes(BATCH) == [16, 16, 8]
    labels = np.concatenate([y.numpy() for _, y in batches])
    assert labels.min() >= 0 and labels.max() < classes
    for x, y in batches:
        assert x.dtype.name == "float32" and tuple(x.shape[1:]) == shape
        values = x.numpy()
        assert np.isfinite(values).all() and values.min() >= 0.0 and values.max() <= 1.0
    if wl.dataset == "imdb_reviews":  # a multi-hot bag of words: 0/1, and words were found
        assert set(np.unique(values)) == {0.0, 1.0}
    assert data.sample(4).shape == (4, *shape)

    keras.utils.set_random_seed(0)
    model = wl.build_model(data.input_shape, data.num_classes)
    assert tuple(model.input_shape[1:]) == shape and model.output_shape[-1] == classes
    model.compile(optimizer=kav.Adam(), loss=wl.loss(), metrics=wl.metrics())
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(data.train_batches(BATCH, seed=0, start_epoch=0, end_epoch=1), epochs=1,
                        steps_per_epoch=steps, validation_data=data.test_batches(BATCH),
                        verbose=0).history
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert len(history[key]) == 1 and np.isfinite(history[key][0]), (key, history)
    assert model.optimizer.iterations.numpy() == steps
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
