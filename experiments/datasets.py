"""Datasets by name, read through TensorFlow Datasets (TFDS).

``load(name, data_dir=None)`` returns a :class:`Data`: the raw train and test splits as cached
``tf.data`` pipelines plus what a model needs to know (input shape, number of classes) and
``train_batches`` / ``test_batches`` to feed ``model.fit``.

Registered datasets (``names()``):

* ``digits`` -- **the offline default**: scikit-learn's handwritten digits (8x8), written as the
  TFDS builder :class:`experiments.digits_builder.Digits` (TFDS name ``digits`` too); prepared on
  first use into the data dir (a few seconds, quietly), no network needed.
* ``mnist``, ``fashion_mnist``, ``cifar10`` -- TFDS catalogue images.
* ``imdb_reviews`` -- TFDS catalogue movie reviews, read as a bag of words: multi-hot vectors over
  the 10,000 most frequent words of the training reviews (as in Kingma & Ba, section 6.1).

Catalogue datasets are never downloaded here: on a machine without network TFDS would retry for
minutes. If one is not prepared in the data dir, :class:`DatasetNotPreparedError` is raised at
once, saying how to prepare it (``tfds build mnist --data_dir DIR`` on a machine with network,
then copy DIR, or point ``TFDS_DATA_DIR`` / ``data_dir`` at a prepared copy).

The data dir is ``data_dir`` when given, else TFDS's own default (``TFDS_DATA_DIR`` when it was
set before TFDS was imported, else ``~/tensorflow_datasets``).

Training order is a pure function of ``(seed, epoch)`` (a stateless shuffle): epoch ``e`` of a run with seed ``s`` sees
the same order whether the run started at epoch 0 or resumed at epoch ``e``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
from typing import Callable

import numpy as np

from .errors import UserError
from .lazy import LazyModule

tf = LazyModule("tensorflow")  # imported on first use: the registry and file checks need no TF

VOCAB_SIZE = 10_000  # words kept for the IMDB bag of words (Kingma & Ba 2015, section 6.1)
# TFDS's own INFO lines (about nine per run: "Load dataset info from", "Constructing
# tf.data.Dataset", ...) are dropped unless this is True (the command line's -v sets it).
VERBOSE_TFDS = False

log = logging.getLogger("experiments.datasets")


class DatasetNotPreparedError(UserError, RuntimeError):
    """A catalogue dataset is not on disk and will not be downloaded here, or its files on disk
    are incomplete or damaged (:func:`check_files`, :func:`verify_records`)."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How to read one dataset: its TFDS name and how a raw example becomes model input.

    ``kind`` is ``"image"`` (uint8 pixels, divided by ``scale`` into [0, 1]) or ``"text"``
    (strings, turned into a multi-hot bag of words of ``VOCAB_SIZE`` words).
    """

    name: str
    tfds_name: str
    kind: str
    description: str
    scale: float = 255.0
    local_builder: bool = False  # True: built here from a package, no download


DATASETS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the registry (names must be unique)."""
    if spec.name in DATASETS:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    DATASETS[spec.name] = spec
    return spec


register(DatasetSpec("digits", "digits", "image",
                     "scikit-learn handwritten digits, 8x8 grey, 10 classes, 1,437 train / 360 test",
                     scale=16.0, local_builder=True))
register(DatasetSpec("mnist", "mnist", "image", "MNIST digits, 28x28 grey, 60,000 / 10,000"))
register(DatasetSpec("fashion_mnist", "fashion_mnist", "image",
                     "Fashion-MNIST, 28x28 grey, 10 classes of clothing, 60,000 / 10,000"))
register(DatasetSpec("cifar10", "cifar10", "image", "CIFAR-10, 32x32 colour, 50,000 / 10,000"))
register(DatasetSpec("imdb_reviews", "imdb_reviews", "text",
                     f"IMDB movie reviews, sentiment (2 classes), bag of {VOCAB_SIZE:,} words, "
                     "25,000 / 25,000"))


def names() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(DATASETS)


def get(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` called ``name``; ``ValueError`` listing the names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(names())}") from None


@dataclasses.dataclass
class Data:
    """One loaded dataset.

    ``train`` and ``test`` yield raw ``(x, label)`` examples (uint8 images or strings), cached in
    memory after the first pass. ``preprocess`` maps a *batch* of raw ``x`` to the float32 model
    input of shape ``(batch, *input_shape)``.
    """

    spec: DatasetSpec
    builder: object
    train: tf.data.Dataset
    test: tf.data.Dataset
    num_train: int
    num_test: int
    input_shape: tuple
    num_classes: int
    preprocess: Callable
    _memory: tuple | None = dataclasses.field(default=None, repr=False)
    _mlflow: dict = dataclasses.field(default_factory=dict, repr=False)  # split -> MLflow dataset

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def data_dir(self) -> str:
        """The directory holding this dataset's files (``<root>/<tfds name>/<version>``)."""
        return str(self.builder.data_dir)

    @property
    def version(self) -> str:
        return str(self.builder.info.version)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Batches in one pass over the training split (the last one may be smaller)."""
        return -(-self.num_train // batch_size)

    def batch_sizes(self, batch_size: int) -> list[int]:
        """The size of each batch of one epoch, in order."""
        full, rest = divmod(self.num_train, batch_size)
        return [batch_size] * full + ([rest] if rest else [])

    def train_batches(self, batch_size: int, seed: int, start_epoch: int = 0,
                      end_epoch: int = 1) -> tf.data.Dataset:
        """Shuffled, batched, preprocessed training batches for epochs ``start_epoch..end_epoch-1``.

        The epochs follow one another in one dataset (feed it to ``fit`` with
        ``steps_per_epoch``); batches never straddle two epochs. The order of epoch ``e`` is a
        stateless shuffle keyed by ``(seed, e)`` alone -- independent of TensorFlow's global
        seed and of iterator state -- so a resumed run sees exactly the order an uninterrupted
        one would. The examples are read once (cached) into memory, then gathered by batch.
        """
        x_all, y_all = self._in_memory()
        n, seed = self.num_train, int(seed)

        def one_epoch(epoch):
            order = epoch_order(n, seed, epoch)
            return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

        def gather(indices):
            return self.preprocess(tf.gather(x_all, indices)), tf.gather(y_all, indices)

        ds = tf.data.Dataset.range(start_epoch, end_epoch).flat_map(one_epoch)
        return ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    def _in_memory(self):
        if self._memory is None:
            self._memory = self.train.batch(self.num_train).get_single_element()
        return self._memory

    def test_batches(self, batch_size: int) -> tf.data.Dataset:
        """The test split, in its stored order, batched and preprocessed."""
        ds = self.test.batch(batch_size)
        return ds.map(self._batch_map, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
            tf.data.AUTOTUNE)

    def _batch_map(self, x, y):
        return self.preprocess(x), y

    def sample(self, n: int = 32) -> np.ndarray:
        """The first ``n`` test inputs, preprocessed, as a NumPy array (for model signatures)."""
        # Read from the files, not the cached pipeline: a partial read would discard the cache.
        raw = self.builder.as_dataset(split="test", as_supervised=True, shuffle_files=False)
        x, _ = next(iter(raw.batch(n).map(self._batch_map)))
        return x.numpy()

    def digest(self) -> str:
        """A short fingerprint of the dataset: TFDS name, version, split sizes."""
        text = f"{self.spec.tfds_name}:{self.version}:{self.num_train}:{self.num_test}"
        return hashlib.sha256(text.encode()).hexdigest()[:8]


def epoch_order(num_examples: int, seed: int, epoch) -> tf.Tensor:
    """The order of the training examples in epoch ``epoch`` of a run seeded ``seed``.

    A permutation of ``range(num_examples)`` (int64, shape ``(num_examples,)``) from TensorFlow's
    stateless shuffle keyed by the pair ``(seed, epoch)``: a pure function of the two, so distinct
    pairs -- (0, 1) and (1, 0) included -- give independent orders.
    """
    key = tf.stack([tf.constant(int(seed), tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.stateless_shuffle(tf.range(num_examples, dtype=tf.int64), key)


def ensure_available(name: str, data_dir: str | None = None) -> None:
    """Raise :class:`DatasetNotPreparedError` now if ``name`` cannot be loaded offline.

    Cheap (no data is read): lets a run fail before it opens a tracking store or builds a model.
    The local ``digits`` builder is always available (it prepares itself without network).
    """
    spec = get(name)
    if not spec.local_builder:
        _builder(spec, data_dir)


class _TfdsInfoFilter(logging.Filter):
    """Drops TFDS's records below WARNING (absl's logger) unless ``VERBOSE_TFDS``."""

    def filter(self, record):
        return (VERBOSE_TFDS or record.levelno >= logging.WARNING
                or "tensorflow_datasets" not in record.pathname)


_TFDS_FILTER = _TfdsInfoFilter()


def quiet_tfds() -> None:
    """Keep TFDS's INFO lines out of the output (idempotent); ``VERBOSE_TFDS`` lets them through."""
    absl = logging.getLogger("absl")
    if _TFDS_FILTER not in absl.filters:
        absl.addFilter(_TFDS_FILTER)


def _prepare_local(builder) -> None:
    """Prepare a local (offline) builder without TFDS's download-looking messages.

    TFDS prints "Downloading and preparing dataset Unknown size ..." and "... downloaded and
    prepared to ..." to stdout and warns that the folder being written has no
    dataset_info.json yet; for a dataset built from a package none of that is true. One INFO line
    of this module says what happens instead.
    """
    import tensorflow_datasets as tfds

    from .digits_builder import FORMER_NAME

    root = os.path.dirname(os.path.dirname(str(builder.data_dir)))
    if os.path.isdir(os.path.join(root, FORMER_NAME)):
        log.info("the digits dataset in %s was prepared under its former TFDS name %r; preparing "
                 "it as %r (same examples; the %r folder may be deleted)", root, FORMER_NAME,
                 builder.name, FORMER_NAME)
    log.info("preparing dataset %r from scikit-learn in %s (offline, a few seconds)",
             builder.name, builder.data_dir)
    tfds.display_progress_bar(False)
    with _hushed_tfds(), contextlib.redirect_stdout(io.StringIO()) as printed:
        builder.download_and_prepare()
    if VERBOSE_TFDS and printed.getvalue():
        print(printed.getvalue(), end="")


@contextlib.contextmanager
def _hushed_tfds():
    """TFDS's warnings off too (unless ``VERBOSE_TFDS``): for the local builder, whose folder
    TFDS inspects and warns about ("has no dataset_info.json") while it is being written."""
    absl = logging.getLogger("absl")
    level = absl.level
    if not VERBOSE_TFDS:
        absl.setLevel(logging.ERROR)
    try:
        yield
    finally:
        absl.setLevel(level)


# ---- pre-flight: are the files there and whole? ---------------------------------------------------

REQUIRED_SPLITS = ("train", "test")
TFRECORD_OVERHEAD = 16  # bytes around each record: length (8), CRC of length (4), CRC of data (4)


def default_data_dir() -> str:
    """TFDS's data dir when none is given: ``$TFDS_DATA_DIR``, else ``~/tensorflow_datasets``."""
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def _version_key(name: str):
    return tuple(int(p) for p in name.split("."))


def _prepared_dir(spec: DatasetSpec, root: str) -> str | None:
    """The newest ``<root>/<tfds name>/<version>`` directory, None if there is none."""
    base = os.path.join(root, spec.tfds_name)
    if not os.path.isdir(base):
        return None
    versions = [v for v in os.listdir(base)
                if re.fullmatch(r"\d+\.\d+\.\d+", v) and os.path.isdir(os.path.join(base, v))]
    return os.path.join(base, max(versions, key=_version_key)) if versions else None


def split_files(version_dir: str, tfds_name: str, split: dict) -> list[str]:
    """The shard files of one ``splits`` entry of ``dataset_info.json``."""
    n = len(split.get("shardLengths", []))
    ext = "tfrecord"
    return [os.path.join(version_dir, f"{tfds_name}-{split['name']}.{ext}-{i:05d}-of-{n:05d}")
            for i in range(n)]


def check_files(name: str, data_dir: str | None = None) -> str | None:
    """Check, without reading the data, that dataset ``name`` can be read or prepared.

    Returns the prepared version directory (None: ``digits`` will be prepared, into a data dir
    proven writable). Raises :class:`DatasetNotPreparedError` when ``dataset_info.json`` is
    missing or unreadable, a split is missing, a shard file is missing, or the files' sizes do not
    add up to what ``dataset_info.json`` records (truncated or altered files); and for a catalogue
    dataset that is not prepared.
    """
    from .checkpoints import require_writable_dir

    spec = get(name)
    root = os.path.abspath(data_dir or default_data_dir())
    version_dir = _prepared_dir(spec, root)
    if version_dir is None:
        if spec.local_builder:
            require_writable_dir(root, "TFDS data dir", f"the {name!r} dataset is prepared there "
                                 "on first use: pass a writable --data-dir (or TFDS_DATA_DIR)")
            return None
        _builder(spec, data_dir)  # raises the not-prepared message
        return None
    redo = (f"delete {version_dir} and prepare it again" +
            (" (it is rebuilt automatically on the next run)" if spec.local_builder else
             f" (`tfds build {spec.tfds_name} --data_dir {root}` on a machine with network)"))
    info_path = os.path.join(version_dir, "dataset_info.json")
    try:
        with open(info_path) as f:
            info = json.load(f)
        splits = {s["name"]: s for s in info["splits"]}
    except FileNotFoundError:
        raise DatasetNotPreparedError(
            f"TFDS data of {name!r} in {version_dir} is incomplete: dataset_info.json is missing; "
            f"{redo}") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetNotPreparedError(
            f"TFDS data of {name!r} in {version_dir} is damaged: {info_path} is unreadable "
            f"({type(err).__name__}: {err}); {redo}") from None
    for split in REQUIRED_SPLITS:
        if split not in splits:
            raise DatasetNotPreparedError(
                f"TFDS data of {name!r} in {version_dir} has no {split!r} split in "
                f"dataset_info.json; {redo}")
    if info.get("fileFormat", "tfrecord") != "tfrecord":
        return version_dir
    for split in REQUIRED_SPLITS:
        entry = splits[split]
        files = split_files(version_dir, spec.tfds_name, entry)
        missing = [f for f in files if not os.path.isfile(f)]
        if not files or missing:
            raise DatasetNotPreparedError(
                f"TFDS data of {name!r} in {version_dir} lacks the {split!r} split's file(s) "
                f"{', '.join(os.path.basename(f) for f in missing) or '(none listed)'}; {redo}")
        expected = int(entry.get("numBytes", 0)) + TFRECORD_OVERHEAD * sum(
            int(n) for n in entry["shardLengths"])
        actual = sum(os.path.getsize(f) for f in files)
        if int(entry.get("numBytes", 0)) and actual != expected:
            raise DatasetNotPreparedError(
                f"TFDS data of {name!r} in {version_dir}: the {split!r} split's files hold "
                f"{actual} bytes, dataset_info.json says {expected} (truncated or altered); {redo}")
    return version_dir


def _masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _check_tfrecord(path: str, expected: int) -> str | None:
    """What is wrong with the TFRecord file ``path`` (None: ``expected`` whole records).

    Each record is ``uint64 length, uint32 masked CRC-32C of length, data, uint32 masked
    CRC-32C of data`` (little-endian), as TensorFlow writes and checks them.
    """
    count, offset = 0, 0
    with open(path, "rb") as f:
        while True:
            header = f.read(12)
            if not header:
                break
            if len(header) < 12:
                return f"a record header is cut short at byte {offset}"
            length = int.from_bytes(header[:8], "little")
            if _masked_crc(header[:8]) != int.from_bytes(header[8:], "little"):
                return f"corrupted record length at byte {offset}"
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                return f"a record is cut short at byte {offset}"
            if _masked_crc(data) != int.from_bytes(footer, "little"):
                return f"corrupted record at byte {offset}"
            count += 1
            offset += 16 + length
    if count != expected:
        return f"{count} records, dataset_info.json says {expected}"
    return None


def verify_records(name: str, version_dir: str) -> None:
    """Read every record of the train and test splits once, checking each record's CRC-32C
    (``google-crc32c``; no TensorFlow) and the record count of each shard.

    Raises :class:`DatasetNotPreparedError` naming the file when a record is damaged, so a run
    fails before it starts instead of mid-training. Costs one pass over the files (about 1 GB/s:
    digits in milliseconds, MNIST in a tenth of a second).
    """
    spec = get(name)
    with open(os.path.join(version_dir, "dataset_info.json")) as f:
        info = json.load(f)
    if info.get("fileFormat", "tfrecord") != "tfrecord":
        return
    splits = {s["name"]: s for s in info["splits"]}
    for split in REQUIRED_SPLITS:
        files = split_files(version_dir, spec.tfds_name, splits[split])
        for path, expected in zip(files, splits[split]["shardLengths"]):
            why = _check_tfrecord(path, int(expected))
            if why is not None:
                raise DatasetNotPreparedError(
                    f"TFDS data of {name!r}: {path} is damaged ({why}); delete {version_dir} and "
                    "prepare it again")


def _builder(spec: DatasetSpec, data_dir: str | None):
    import tensorflow_datasets as tfds

    quiet_tfds()
    if spec.local_builder:
        from .digits_builder import Digits

        with _hushed_tfds():
            builder = Digits(data_dir=data_dir)
            prepared = builder.is_prepared()
        if not prepared:
            _prepare_local(builder)
        return builder
    builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
        root = os.path.dirname(os.path.dirname(str(builder.data_dir)))
        raise DatasetNotPreparedError(
            f"dataset {spec.name!r} (TFDS {spec.tfds_name!r}) is not prepared in the TFDS data dir "
            f"{root} (looked for {builder.data_dir}), and it is not downloaded here. "
            f"Prepare it on a machine with network: `tfds build {spec.tfds_name} --data_dir DIR` "
            f"(or python -c \"import tensorflow_datasets as tfds; tfds.load('{spec.tfds_name}', "
            f"data_dir='DIR')\"), then copy DIR here and point TFDS_DATA_DIR at it "
            "(or pass --data-dir). The offline default dataset is 'digits'."
        )
    return builder


def _text_preprocess(train: tf.data.Dataset):
    import keras

    # pad_to_max_tokens: always VOCAB_SIZE wide, as input_shape says, even when the training
    # reviews hold fewer distinct words (without it the width is the vocabulary's size).
    vectorizer = keras.layers.TextVectorization(max_tokens=VOCAB_SIZE, output_mode="multi_hot",
                                                pad_to_max_tokens=True)
    vectorizer.adapt(train.map(lambda x, y: x).batch(1024))

    def preprocess(x):
        return tf.cast(vectorizer(x), tf.float32)

    return preprocess, (VOCAB_SIZE,)


_LOADED: dict = {}  # per process: files' identity -> Data (see load)
_LOADED_MAX = 4


def _files_key(name: str, data_dir: str | None):
    """What identifies the prepared files of ``name`` in ``data_dir``: the version directory and
    each file's name, size and modification time (None when not prepared or unreadable)."""
    spec = get(name)
    root = os.path.abspath(data_dir or default_data_dir())
    version_dir = _prepared_dir(spec, root)
    if version_dir is None:
        return None
    try:
        files = tuple(sorted((entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
                             for entry in os.scandir(version_dir) if entry.is_file()))
    except OSError:
        return None
    return (name, root, version_dir, files)


def load(name: str, data_dir: str | None = None) -> Data:
    """Load dataset ``name`` from the TFDS data dir ``data_dir`` (None: TFDS's default).

    ``digits`` is prepared on first use. Catalogue datasets must already be prepared there, else
    :class:`DatasetNotPreparedError` (raised within about a second, never a download attempt).

    Loaded once per process: a later call for the same files (same version directory, every
    file's name, size and modification time unchanged) returns the same :class:`Data`, whose
    in-memory copy of the training split and MLflow dataset descriptions are then already made
    (about 0.3 s a run on 2 cores for digits; a text dataset's vocabulary is not adapted again).
    """
    key = _files_key(name, data_dir)
    if key is not None and key in _LOADED:
        return _LOADED[key]
    data = _load(name, data_dir)
    key = key or _files_key(name, data_dir)  # prepared just now
    if key is not None:
        while len(_LOADED) >= _LOADED_MAX:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = data
    return data


def _load(name: str, data_dir: str | None) -> Data:
    spec = get(name)
    builder = _builder(spec, data_dir)
    info = builder.info
    train = builder.as_dataset(split="train", as_supervised=True, shuffle_files=False).cache()
    test = builder.as_dataset(split="test", as_supervised=True, shuffle_files=False).cache()
    num_classes = int(info.features["label"].num_classes)
    if spec.kind == "image":
        input_shape = tuple(int(d) for d in info.features["image"].shape)
        scale = spec.scale

        def preprocess(x):
            return tf.cast(x, tf.float32) / scale
    else:
        preprocess, input_shape = _text_preprocess(train)
    return Data(
        spec=spec, builder=builder, train=train, test=test,
        num_train=int(info.splits["train"].num_examples),
        num_test=int(info.splits["test"].num_examples),
        input_shape=input_shape, num_classes=num_classes, preprocess=preprocess,
    )


def mlflow_dataset(data: Data, split: str):
    """The ``split`` ("train" or "test") of ``data`` as an MLflow dataset, for ``mlflow.log_input``.

    Built with ``mlflow.data.from_numpy`` on the whole split (as stored: uint8 images or strings,
    labels), so the logged schema is per example with a batch axis -- ``[-1, 8, 8, 1]`` uint8
    features and ``[-1]`` int64 targets for digits -- and the profile counts examples.
    (``from_tensorflow`` on an unbatched ``tf.data.Dataset`` infers the schema from one example
    and takes its first axis for the batch axis: ``[-1, 8, 1]``.) Name ``<dataset>-<split>``,
    source the TFDS data dir, digest `Data.digest` plus the split. Made once per :class:`Data`
    and split, then kept on ``data``.
    """
    if split in data._mlflow:
        return data._mlflow[split]
    import mlflow

    if split == "train":
        x, y = data._in_memory()
    elif split == "test":
        x, y = data.test.batch(max(data.num_test, 1)).get_single_element()
    else:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    import warnings

    with warnings.catch_warnings():  # "can be interpreted in multiple ways": both mean a local dir
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_numpy(
            features=x.numpy(), targets=y.numpy(), source=data.data_dir,
            name=f"{data.name}-{split}", digest=f"{data.digest()}{split[:2]}")
    data._mlflow[split] = dataset  # the same description for every run of this Data
    return dataset
