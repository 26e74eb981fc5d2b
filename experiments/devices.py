"""Where a run trains: the TensorFlow devices for ``--device`` and a human description of them."""

from __future__ import annotations

import contextlib
import os
import platform

from .config import ConfigError, TrainConfig


def devices(config: TrainConfig) -> list[str]:
    """The logical TensorFlow device names for ``config.device`` (``/device:CPU:0``, ...).

    Raises :class:`ConfigError` for ``gpu`` when TensorFlow sees no GPU.
    """
    import tensorflow as tf

    if config.device == "gpu":
        gpus = tf.config.list_logical_devices("GPU")
        if not gpus:
            raise ConfigError(
                "--device gpu: TensorFlow sees no GPU here (tf.config.list_physical_devices('GPU') "
                f"is empty; this TensorFlow {'has' if tf.test.is_built_with_cuda() else 'lacks'} "
                "CUDA support). Use --device cpu, or install tensorflow[and-cuda] on a machine "
                "with an NVIDIA GPU and its driver.")
        return [d.name for d in gpus]
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def describe(config: TrainConfig, names: list[str]) -> str:
    """A human description of the hardware the run trains on."""
    import tensorflow as tf

    if config.device == "gpu":
        found = []
        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            found.append(details.get("device_name", gpu.name))
        what = ", ".join(found)
    else:
        model = platform.processor() or platform.machine()
        with contextlib.suppress(OSError):
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        model = line.split(":", 1)[1].strip()
                        break
        what = f"CPU {model}, {os.cpu_count()} cores"
    if config.strategy == "mirrored":
        what += f"; MirroredStrategy over {len(names)} devices: {', '.join(names)}"
    return what
