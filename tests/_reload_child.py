"""Run in a fresh Python process by test_save_reload.py: reload each saved model, record its
optimizer state, take one more training step, and save the results for the parent to compare.

Usage: python -m tests._reload_child DIR custom_objects|import_only
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_adam_variants as kav  # noqa: E402  (registers the classes: enough for import_only)


def main(directory, how):
    batch = np.load(os.path.join(directory, "batch.npz"))
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".keras"):
            continue
        path = os.path.join(directory, name)
        if how == "custom_objects":
            model = keras.models.load_model(path, custom_objects=kav.custom_objects())
        else:
            model = keras.models.load_model(path)
        state = {f"opt_{i}": v.numpy() for i, v in enumerate(model.optimizer.variables)}
        state["class"] = np.array(type(model.optimizer).__module__ + "." + type(model.optimizer).__name__)
        model.train_on_batch(batch["x"], batch["y"])
        weights = {f"w_{i}": w for i, w in enumerate(model.get_weights())}
        np.savez(os.path.join(directory, f"{name}.{how}.npz"), **state, **weights)


if __name__ == "__main__":
    main(*sys.argv[1:])
