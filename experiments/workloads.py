"""Workloads: a dataset + a model builder + loss + metrics, by name (the AlgoPerf split).

A workload fixes everything about a training problem except the optimizer. Names are
``<dataset>_<model>``; the models follow Kingma & Ba (2015), section 6:

* ``*_logreg`` -- multiclass logistic regression (6.1): one dense layer on the flattened input.
* ``*_mlp``    -- multilayer perceptron (6.2): the paper uses 2 hidden layers of 1000 ReLU units;
  ``digits_mlp`` uses 2 x 256 to keep the default comparison fast. No dropout, so that a run is a
  deterministic function of its seed (resume gives bit-equal weights).
* ``*_cnn``    -- convolutional network (6.3): ``cifar10_cnn`` is the paper's c64-c64-c128-1000
  (5x5 convolutions, 3x3 max pooling with stride 2); the small-image ones are scaled down.

Models output logits; the loss is sparse categorical cross-entropy from logits, the metric is
accuracy (named ``accuracy``, so Keras logs ``accuracy`` / ``val_accuracy``).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from .lazy import LazyModule

keras = LazyModule("keras")  # imported on first use: names and lookups need no TensorFlow


@dataclasses.dataclass(frozen=True)
class Workload:
    """A named training problem. ``build_model(input_shape, num_classes)`` returns a new,
    uncompiled ``keras.Model`` mapping float32 inputs to logits."""

    name: str
    dataset: str
    build_model: Callable[[tuple, int], keras.Model]
    description: str

    def loss(self) -> keras.losses.Loss:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self) -> list:
        return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


WORKLOADS: dict[str, Workload] = {}


def register(workload: Workload) -> Workload:
    """Add ``workload`` to the registry (names must be unique)."""
    if workload.name in WORKLOADS:
        raise ValueError(f"workload {workload.name!r} is already registered")
    WORKLOADS[workload.name] = workload
    return workload


def names() -> list[str]:
    """Registered workload names, sorted."""
    return sorted(WORKLOADS)


def get(name: str) -> Workload:
    """The workload called ``name``; ``ValueError`` listing the names otherwise."""
    try:
        return WORKLOADS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}: expected one of {', '.join(names())}") from None


# ---- model builders ------------------------------------------------------------------------------

def logreg(input_shape, num_classes, name="logreg"):
    """Multiclass logistic regression: flatten, one dense layer (logits)."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x), name=name)


def mlp(hidden=(1000, 1000)):
    """A builder for a ReLU MLP with the given hidden widths."""
    def build(input_shape, num_classes):
        inputs = keras.Input(input_shape)
        x = keras.layers.Flatten()(inputs)
        for i, width in enumerate(hidden):
            x = keras.layers.Dense(width, activation="relu", name=f"hidden{i}")(x)
        outputs = keras.layers.Dense(num_classes, name="logits")(x)
        return keras.Model(inputs, outputs, name="mlp_" + "x".join(map(str, hidden)))
    return build


def cnn(filters=(32, 64), kernel=3, pool=2, dense=128, name="cnn"):
    """A builder for conv(+ReLU)-maxpool blocks, one per entry of ``filters``, then a dense layer."""
    def build(input_shape, num_classes):
        inputs = keras.Input(input_shape)
        x = inputs
        for i, f in enumerate(filters):
            x = keras.layers.Conv2D(f, kernel, padding="same", activation="relu", name=f"conv{i}")(x)
            x = keras.layers.MaxPooling2D(pool, strides=2, padding="same", name=f"pool{i}")(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(dense, activation="relu", name="dense")(x)
        return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x), name=name)
    return build


def paper_cifar_cnn(input_shape, num_classes):
    """Kingma & Ba 6.3: c64-c64-c128-1000, 5x5 convolutions, 3x3 max pooling with stride 2."""
    return cnn(filters=(64, 64, 128), kernel=5, pool=3, dense=1000, name="cnn_c64_c64_c128_1000")(
        input_shape, num_classes)


# ---- the registry ---------------------------------------------------------------------------------

register(Workload("digits_logreg", "digits", logreg, "logistic regression on 8x8 digits"))
register(Workload("digits_mlp", "digits", mlp((256, 256)), "MLP 2x256 ReLU on 8x8 digits"))
register(Workload("digits_cnn", "digits", cnn((16, 32), dense=64, name="cnn_small"),
                  "small CNN (conv16-pool-conv32-pool-dense64) on 8x8 digits"))

for _ds, _what in (("mnist", "MNIST"), ("fashion_mnist", "Fashion-MNIST")):
    register(Workload(f"{_ds}_logreg", _ds, logreg, f"logistic regression on {_what}"))
    register(Workload(f"{_ds}_mlp", _ds, mlp((1000, 1000)), f"MLP 2x1000 ReLU on {_what}"))
    register(Workload(f"{_ds}_cnn", _ds, cnn((32, 64), dense=128),
                      f"CNN (conv32-pool-conv64-pool-dense128) on {_what}"))

register(Workload("cifar10_cnn", "cifar10", paper_cifar_cnn,
                  "CNN c64-c64-c128-1000 (Kingma & Ba 6.3) on CIFAR-10"))
register(Workload("imdb_reviews_logreg", "imdb_reviews", logreg,
                  "logistic regression on a 10,000-word bag of words (Kingma & Ba 6.1)"))
register(Workload("imdb_reviews_mlp", "imdb_reviews", mlp((1000, 1000)),
                  "MLP 2x1000 ReLU on a 10,000-word bag of words"))
