"""The Keras callback that feeds one MLflow run (through a tracking ``RunWriter``) and writes
the run's checkpoint at every epoch end.

Metrics per epoch, named and stepped as ``mlflow.keras.autolog`` (and
:class:`keras_adam_variants.callbacks.MlflowLogger`) does, step = the epoch counting from 0:
``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``learning_rate`` (the optimizer's rate at
the epoch's end), ``epoch_time`` (seconds, training + validation, before the checkpoint is
written), ``examples_per_second`` (training only); every ``log_every`` steps (step = global step,
1 = after the first batch): ``train_loss_step``, the mean training loss over the steps since the
previous point.
The writer never blocks training: while the tracking server is unreachable the values wait in its
spool, the progress line says so, and checkpoints go on being written.
"""

from __future__ import annotations

import logging
import time

import keras

from . import faults
from .config import EPOCH_KEYS, STEP_KEY  # noqa: F401 (re-exported)
from keras_adam_variants.callbacks import EPOCH_TIME_METRIC, LEARNING_RATE_METRIC

log = logging.getLogger("experiments.train")

STEP_FLUSH_SECONDS = 15.0


class RunLogger(keras.callbacks.Callback):
    """Collects per-epoch and per-step metrics, hands them to ``writer``, checkpoints each epoch.

    Values already in the run (logged before a crash, then re-trained identically after the
    resume) are not logged again: ``logged`` maps each metric key to the last step it has.
    ``state`` is the checkpoint state (updated in place), ``checkpoints`` a
    :class:`experiments.checkpoints.Checkpoints` or None.
    """

    def __init__(self, writer, data, batch_size, log_every, state, checkpoints, logged):
        super().__init__()
        self.writer, self.data = writer, data
        self.batch_sizes = data.batch_sizes(batch_size)
        self.log_every = log_every
        self.state, self.checkpoints, self.logged = state, checkpoints, logged
        self.buffer = []
        self.last_flush = time.monotonic()

    def _add(self, key, value, step):
        if step > self.logged.get(key, -1):
            self.buffer.append((key, value, step))

    def flush(self):
        """Hand the buffered values to the writer (non-blocking)."""
        if self.buffer:
            self.writer.log_metrics(self.buffer)
            self.buffer = []
        self.last_flush = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()
        self.train_time = None
        self.seen = 0       # examples so far in this epoch
        self.mark = (0, 0.0)  # (examples, summed loss) at the previous step-loss point
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.state["global_step"] += 1
        self.seen += self.batch_sizes[batch] if batch < len(self.batch_sizes) else 0
        step = self.state["global_step"]
        if self.log_every > 0 and step % self.log_every == 0 and logs and "loss" in logs:
            # Keras reports the running mean of the epoch, weighted by batch size: recover the
            # mean over the batches since the previous point from the running sums.
            total = float(logs["loss"]) * self.seen
            n0, total0 = self.mark
            if self.seen > n0:
                self._add(STEP_KEY, (total - total0) / (self.seen - n0), step)
            self.mark = (self.seen, total)
        if self.buffer and time.monotonic() - self.last_flush > STEP_FLUSH_SECONDS:
            self.flush()
        if faults.armed("mid_epoch") and self.epoch == 1 and batch + 1 == len(self.batch_sizes) // 2:
            self.flush()  # some of this epoch's step losses are in the run when it dies
            faults.point("mid_epoch")

    def on_test_begin(self, logs=None):
        if self.train_time is None:
            self.train_time = time.perf_counter() - self.t0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        elapsed = time.perf_counter() - self.t0
        train_time = self.train_time or elapsed
        number = epoch + 1  # epochs done
        values = {key: float(logs[key]) for key in ("loss", "accuracy", "val_loss", "val_accuracy")
                  if key in logs}
        values[LEARNING_RATE_METRIC] = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        values[EPOCH_TIME_METRIC] = elapsed
        values["examples_per_second"] = self.data.num_train / train_time
        history = self.state["history"]
        for key, value in values.items():
            history.setdefault(key, []).append(value)
            self._add(key, value, epoch)  # autolog's step: the epoch from 0
        self.flush()
        line = "  ".join(f"{k} {v:.4g}" for k, v in values.items())
        if not getattr(self.writer, "reachable", True):
            line += f"  [{self.writer.status_line()}]"
        log.info("epoch %d/%d  %s", number, self.params.get("epochs", 0), line)
        self.state["epoch"] = number
        if self.checkpoints is not None:
            self.state.update(self.checkpoints.save_model(self.model, number))
            self.checkpoints.write(self.state)
            self.checkpoints.prune(keep=self.state["model"])

    def on_train_end(self, logs=None):
        self.flush()
