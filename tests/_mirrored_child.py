"""Run in a fresh process by test_distribute.py (logical devices must be set before TensorFlow
starts): train every optimizer of the matrix on one device and under MirroredStrategy over two
logical CPU devices, same global batches, and save both sets of weights.

Usage: python -m tests._mirrored_child OUT.npz
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tests.specs import SPECS  # noqa: E402


def train(spec, x, y, strategy):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [keras.Input((6,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)]
        )
        model.compile(
            optimizer=spec.make(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    return model.get_weights(), int(model.optimizer.iterations.numpy())


def main(out):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    results = {}
    for spec in SPECS:
        single, steps_single = train(spec, x, y, tf.distribute.get_strategy())
        multi, steps_multi = train(spec, x, y, mirrored)
        results[f"{spec.id}.steps"] = np.array([steps_single, steps_multi])
        for i, (a, b) in enumerate(zip(single, multi)):
            results[f"{spec.id}.single.{i}"] = a
            results[f"{spec.id}.mirrored.{i}"] = b
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv[1])
