"""Keras callbacks that log to MLflow, on every Keras backend (TensorFlow, JAX, PyTorch).

- `MlflowLogger`: params and per-epoch metrics of a user's own ``model.fit``, named as
  ``mlflow.keras.autolog`` names them (``optimizer_<key>``, metrics at step = epoch from 0), with
  the optimizer's class qualified by its package (``optimizer_name = keras_adam_variants.Adam``).
- `AdaptiveLRLogger`: each layer's effective learning rates and update sizes.

MLflow and matplotlib are imported when training starts, so the package itself needs neither;
TensorFlow is used only when it is Keras' backend.
"""

import concurrent.futures
import os
import re
import tempfile
import time

import keras
import numpy as np
from keras import ops

PERCENTILES = (5.0, 50.0, 95.0)


def _compiled(fn):
    """``fn`` as a `tf.function` on the TensorFlow backend; as is (eager) on JAX and PyTorch,
    where a compiled function would capture the variables' values once instead of reading them."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # already loaded: it is Keras' backend

        return tf.function(fn)
    return fn


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


class AdaptiveLRLogger(keras.callbacks.Callback):
    """Log, per layer, how the optimizer adapts each parameter's step, to the active MLflow run.

    Every ``every_n_steps`` training steps it logs, for each layer (the variables sharing a
    path prefix, e.g. ``dense_1``), in one ``MlflowClient.log_batch`` call:

    - ``effective_lr/<layer>/p05``, ``/p50``, ``/p95``: percentiles over the layer's parameters
      of the optimizer's `effective_learning_rate` (lr / (√v̂ + ε) for Adam; see each class).
      A parameter that has never had a gradient (v̂ = 0: e.g. the weights of an input pixel that
      is always 0) has lr / ε, the rate its first gradient would meet; where such parameters are
      over 5% of a layer, ``p95`` shows that ceiling and ``zero_step_fraction`` their share;
    - ``update_ratio/<layer>``: ‖Δθ‖ / ‖θ‖ for that step, Δθ measured as the change of the
      weights over the step (so it includes weight decay, clipping, everything);
    - ``zero_step_fraction/<layer>``: the fraction of parameters with |Δθ| ≤ zero_tolerance · lr.

    The MLflow step is the optimizer's ``iterations`` after the logged step. At each epoch end it
    logs ``effective_lr/epoch_NNN.png``, a histogram of log10(effective learning rate) per layer.

    Works with any model. The effective-rate metrics and the histogram need an optimizer of this
    package (or any optimizer with ``effective_learning_rate(variable)``); with another optimizer
    only the update metrics are logged. A `keras.optimizers.LossScaleOptimizer` is unwrapped.

    Cost: the statistics of all layers are computed by one function (a `tf.function` on the
    TensorFlow backend, eager on JAX and PyTorch), and the values come back
    to Python in one transfer: about one optimizer step's worth of elementwise work per logged
    step. The MLflow calls and the drawing of the histogram run on one background thread, in
    order; `on_train_end` waits for them and re-raises their first error. That thread is handed
    plain values only (NumPy arrays, names) and never touches the model: on JAX, reading
    `Callback.model` writes the trainer's state back into the model (``jax_state_sync``), which
    is only safe between steps, on the training thread. Percentiles are exact
    for layers of up to ``max_values`` parameters and estimated from a uniform random sample of
    ``max_values`` for larger ones (rank error ~0.4% at the default). The weights before a logged
    step are held once (one copy of the weights). ``benchmarks/callback_overhead.py`` measures
    the overhead.
    Assumes ``steps_per_execution=1`` (the batch hooks must see every step).

    Args:
        every_n_steps: log every N steps (N ≥ 1). Defaults to 50.
        run_id: the MLflow run to log to. Defaults to the active run when training starts.
        zero_tolerance: |Δθ| ≤ zero_tolerance · lr counts as a zero step. Defaults to 1e-3.
        max_values: parameters per layer above which percentiles use a sample. Defaults to 16384.
        histogram: whether to log the epoch-end histogram image. Defaults to True.
    """

    def __init__(
        self,
        every_n_steps=50,
        run_id=None,
        zero_tolerance=1e-3,
        max_values=16384,
        histogram=True,
    ):
        super().__init__()
        if not isinstance(every_n_steps, int) or isinstance(every_n_steps, bool) or every_n_steps < 1:
            raise ValueError(
                f"Argument `every_n_steps` must be an integer >= 1; received "
                f"every_n_steps={every_n_steps!r}."
            )
        self.every_n_steps = every_n_steps
        self.run_id = run_id
        self.zero_tolerance = float(zero_tolerance)
        self.max_values = int(max_values)
        self.histogram = histogram
        self._client = None
        self._stats_fn = None
        self._before = None
        self._batches = 0
        self.seconds = 0.0  # time spent in this callback, for overhead measurements

    # -- Keras hooks ---------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        import mlflow
        from mlflow.tracking import MlflowClient

        start = time.perf_counter()
        if self.run_id is None:
            run = mlflow.active_run()
            if run is None:
                raise RuntimeError(
                    "AdaptiveLRLogger logs to the active MLflow run, and there is none: call "
                    "mlflow.start_run() first or pass run_id=."
                )
            self._run_id = run.info.run_id
        else:
            self._run_id = self.run_id
        self._client = MlflowClient()
        # What the background thread needs, computed here, on the training thread.
        self._layer_groups = self._layers()
        self._names = self._metric_names()
        self._batches = int(_numpy(self._optimizer().iterations))
        self._pending = []
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="AdaptiveLRLogger")
        self.seconds += time.perf_counter() - start

    # Only on_train_batch_begin, never on_train_batch_end: a callback with an end-of-batch hook
    # makes Keras dispatch the batch hooks synchronously, waiting for every step's logs (~10% of
    # the training time of a small model here). The statistics of a logged step are computed at
    # the beginning of the next batch (or at the epoch's end), when its weights are final.

    def on_train_batch_begin(self, batch, logs=None):
        logging_now = (self._batches + 1) % self.every_n_steps == 0
        if self._before is not None or logging_now:
            # On JAX, fit keeps the training state apart from the model's variables during an
            # epoch; write it back before reading them (Keras' documented hook for callbacks;
            # `Callback.model` itself calls it on JAX). Here, at a batch's beginning on the
            # training thread, the state is the last step's output and not yet donated to the
            # next step. Anywhere else (another thread, or while a step runs) the sync could
            # attach buffers that the running step has donated, and the next step, handed
            # them back, fails with "Buffer has been deleted or donated".
            sync = getattr(self.model, "jax_state_sync", None)
            if sync is not None:
                sync()
        if self._before is not None:
            self._log_statistics()
        if logging_now:
            start = time.perf_counter()
            self._before = self._snapshot_fn()(self._variables())
            self.seconds += time.perf_counter() - start
        self._batches += 1

    def _log_statistics(self):
        start = time.perf_counter()
        values = _numpy(self._statistics_fn()(self._before))
        self._before = None
        step = int(_numpy(self._optimizer().iterations))
        self._submit(self._log, self._names, values, step)
        self.seconds += time.perf_counter() - start

    def on_epoch_end(self, epoch, logs=None):
        if self._before is not None:
            self._log_statistics()
        if not (self.histogram and self._has_effective_lr()):
            return
        start = time.perf_counter()
        samples = [_numpy(s) for s in self._samples_fn()()]
        title = f"{type(self._optimizer()).__name__}: effective learning rates, epoch {epoch + 1}"
        layers = [layer for layer, _ in self._layer_groups]
        self._submit(self._log_histogram, epoch, samples, layers, title)
        self.seconds += time.perf_counter() - start

    def on_train_end(self, logs=None):
        start = time.perf_counter()
        self._executor.shutdown(wait=True)
        pending, self._pending = self._pending, []
        self.seconds += time.perf_counter() - start
        for future in pending:
            future.result()  # re-raise the first failure of a background call

    def _submit(self, fn, *args):
        self._pending = [f for f in self._pending if not f.done() or f.exception()]
        self._pending.append(self._executor.submit(fn, *args))

    # -- the compiled statistics --------------------------------------------------------------

    def _optimizer(self):
        optimizer = self.model.optimizer
        return getattr(optimizer, "inner_optimizer", optimizer)

    def _has_effective_lr(self):
        return hasattr(self._optimizer(), "effective_learning_rate")

    def _variables(self):
        return list(self.model.trainable_variables)

    def _layers(self):
        """[(layer name, [variable indices])] in the model's order."""
        groups = {}
        for i, variable in enumerate(self._variables()):
            path = getattr(variable, "path", variable.name)
            path = path[len(self.model.name) + 1 :] if path.startswith(self.model.name + "/") else path
            layer = path.rsplit("/", 1)[0] if "/" in path else path
            groups.setdefault(re.sub(r"[^\w\-. :/]", "_", layer), []).append(i)
        return list(groups.items())

    def _metric_names(self):
        names = []
        for layer, _ in self._layers():
            if self._has_effective_lr():
                names += [f"effective_lr/{layer}/p{q:02.0f}" for q in PERCENTILES]
            names += [f"update_ratio/{layer}", f"zero_step_fraction/{layer}"]
        return names

    def _snapshot_fn(self):
        if getattr(self, "_snapshot", None) is None:
            self._snapshot = _compiled(lambda variables: [ops.copy(ops.convert_to_tensor(v)) for v in variables])
        return self._snapshot

    def _sample(self, values, seed):
        """``values`` (1-D) if small, else a uniform random sample of ``max_values`` of them."""
        size = int(values.shape[0])
        if size <= self.max_values:
            return values
        index = keras.random.randint([self.max_values], 0, size, dtype="int32", seed=seed)
        return ops.take(values, index)

    def _effective_lr(self, indices):
        optimizer, variables = self._optimizer(), self._variables()
        return ops.concatenate(
            [
                ops.reshape(ops.cast(optimizer.effective_learning_rate(variables[i]), "float32"), [-1])
                for i in indices
            ],
            axis=0,
        )

    def _statistics_fn(self):
        if self._stats_fn is not None:
            return self._stats_fn
        layers, with_lr = self._layer_groups, self._has_effective_lr()

        def flat(tensors):
            return ops.concatenate([ops.reshape(ops.cast(t, "float32"), [-1]) for t in tensors], 0)

        def statistics(before):
            variables = self._variables()
            lr = ops.cast(self._optimizer().learning_rate, "float32")
            out = []
            for n, (_, indices) in enumerate(layers):
                if with_lr:
                    values = ops.sort(self._sample(self._effective_lr(indices), n))
                    out += [_percentile(values, q) for q in PERCENTILES]
                after = flat([variables[i] for i in indices])
                delta = after - flat([before[i] for i in indices])
                out.append(ops.norm(delta) / ops.maximum(ops.norm(after), 1e-30))
                near_zero = ops.abs(delta) <= self.zero_tolerance * lr
                out.append(ops.mean(ops.cast(near_zero, "float32")))
            return ops.stack(out)

        self._stats_fn = _compiled(statistics)
        return self._stats_fn

    def _samples_fn(self):
        if getattr(self, "_samples", None) is None:
            layers = self._layer_groups
            self._samples = _compiled(
                lambda: [self._sample(self._effective_lr(indices), n) for n, (_, indices) in enumerate(layers)]
            )
        return self._samples

    # -- MLflow, on the background thread: plain values in, never the model -------------------

    def _log(self, names, values, step):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(key=name, value=float(value), timestamp=now, step=step)
            for name, value in zip(names, values)
            if np.isfinite(value)
        ]
        for start in range(0, len(metrics), 1000):  # MLflow's limit per log_batch call
            self._client.log_batch(self._run_id, metrics=metrics[start : start + 1000])

    def _log_histogram(self, epoch, samples, layers, title):
        from matplotlib.figure import Figure

        height = 1.0 + 0.9 * len(samples)
        figure = Figure(figsize=(7, height))
        figure.subplots_adjust(left=0.2, right=0.97, top=1 - 0.45 / height, bottom=0.55 / height)
        axes = figure.subplots(len(samples), 1, sharex=True, squeeze=False)[:, 0]
        finite = [np.log10(s[np.isfinite(s) & (s > 0)]) for s in samples]
        everything = np.concatenate([f for f in finite if f.size] or [np.zeros(1)])
        bins = np.linspace(everything.min(), everything.max() + 1e-9, 61)
        for ax, layer, values in zip(axes, layers, finite):
            counts, _ = np.histogram(values, bins=bins)
            ax.stairs(counts, bins, fill=True, color="tab:blue")
            ax.set_ylabel(layer, rotation=0, ha="right", fontsize=8)
            ax.set_yticks([])
        axes[-1].set_xlabel("log10 effective learning rate")
        figure.suptitle(title)
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, f"epoch_{epoch + 1:03d}.png")
            figure.savefig(path, dpi=80)
            self._client.log_artifact(self._run_id, path, artifact_path="effective_lr")


def _percentile(sorted_values, q):
    """NumPy's default (linear) percentile of a sorted 1-D tensor."""
    n = int(sorted_values.shape[0])
    position = (n - 1) * (q / 100.0)
    low = int(np.floor(position))
    high = min(low + 1, n - 1)
    weight = position - low
    return (1.0 - weight) * sorted_values[low] + weight * sorted_values[high]


# -- MlflowLogger: the names mlflow.keras.autolog uses ----------------------------------------------

# What `mlflow.keras.autolog()` (MLflow 3.17, Keras 3.15) logs for `model.fit`, as measured: every
# key of `optimizer.get_config()` as param `optimizer_<key>` (`optimizer_name` is the optimizer's
# `name`, "adam" for both Keras' and this package's Adam); fit arguments `epochs`, `batch_size`,
# `initial_epoch`, `shuffle`, `steps_per_epoch`, ... as params; every key of Keras' epoch logs
# (`loss`, `accuracy`, `val_loss`, `val_accuracy`, ...) as a metric at step = epoch, counting from 0.
AUTOLOG_PARAM_PREFIX = "optimizer_"
OPTIMIZER_NAME_PARAM = "optimizer_name"
LEARNING_RATE_METRIC = "learning_rate"  # the rate in use at the epoch's end (schedules included)
EPOCH_TIME_METRIC = "epoch_time"  # seconds from the epoch's start to its end, validation included


def qualified_name(optimizer):
    """The optimizer's class with its package: ``keras_adam_variants.Adam``, ``keras.optimizers.Adam``.

    ``optimizer`` is an optimizer or its class; a `keras.optimizers.LossScaleOptimizer` names its
    inner optimizer. Other classes give ``<top-level module>.<class name>``.
    """
    inner = getattr(optimizer, "inner_optimizer", None)
    if inner is not None:
        optimizer = inner
    cls = optimizer if isinstance(optimizer, type) else type(optimizer)
    package = cls.__module__.split(".")[0]
    if package == "keras":
        return f"keras.optimizers.{cls.__name__}"
    return f"{package}.{cls.__name__}"


def optimizer_params(optimizer):
    """The optimizer's params under `mlflow.keras.autolog`'s names: ``{"optimizer_<key>": value}``.

    One entry per key of ``optimizer.get_config()`` (a `LossScaleOptimizer`'s inner optimizer),
    values as they are (MLflow stores ``str(value)``), except ``optimizer_name``, which is the
    package-qualified class (`qualified_name`) rather than the instance's ``name``, so that
    ``keras_adam_variants.Adam`` and ``keras.optimizers.Adam`` runs tell apart in one view.
    """
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    params = {f"{AUTOLOG_PARAM_PREFIX}{key}": value for key, value in inner.get_config().items()}
    params[OPTIMIZER_NAME_PARAM] = qualified_name(inner)
    return params


class _ActiveRunSink:
    """The default sink of `MlflowLogger`: the active MLflow run (``mlflow.log_*``)."""

    def __init__(self, run_id=None):
        import mlflow

        if run_id is None:
            run = mlflow.active_run()
            if run is None:
                raise RuntimeError(
                    "MlflowLogger logs to the active MLflow run, and there is none: call "
                    "mlflow.start_run() first, or pass sink= (an object with log_params(dict) and "
                    "log_metrics([(key, value, step), ...]))."
                )
            run_id = run.info.run_id
        self.run_id = run_id
        self._client = mlflow.MlflowClient()

    def log_params(self, params):
        from mlflow.entities import Param

        items = [Param(str(k), str(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow's limit of params per log_batch
            self._client.log_batch(self.run_id, params=items[start : start + 100])

    def log_metrics(self, triples):
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(str(k), float(v), now, int(s)) for k, v, s in triples]
        for start in range(0, len(metrics), 1000):
            self._client.log_batch(self.run_id, metrics=metrics[start : start + 1000])

    def log_text(self, text, artifact_file):
        self._client.log_text(self.run_id, text, artifact_file)


class MlflowLogger(keras.callbacks.Callback):
    """Log a ``model.fit`` to MLflow under the names ``mlflow.keras.autolog`` uses.

    So that a user's autologged runs, runs logged with this callback and the runs of this
    project's ``kav`` commands line up in one MLflow Compare view. It logs:

    - at the start of training, params: `optimizer_params` (``optimizer_<key>`` for every key of
      the optimizer's config; ``optimizer_name`` = ``keras_adam_variants.Adam``), ``epochs``, and
      ``params`` given here (e.g. ``batch_size``), plus the ``model_summary.txt`` text artifact
      (as autolog) when the sink has ``log_text``;
    - at each epoch's end, step = the epoch counting from 0 (autolog's step): every key of
      Keras' epoch logs (``loss``, ``accuracy``, ``val_loss``, ...), ``learning_rate`` (the
      optimizer's rate then, float) and ``epoch_time`` (seconds).

    Args:
        sink: where to log: an object with ``log_params(dict)`` and
            ``log_metrics([(key, value, step), ...])`` (optionally ``log_text(text, path)``),
            e.g. ``experiments.tracking.RunWriter``. Defaults to the active MLflow run at
            ``on_train_begin`` (RuntimeError if there is none).
        params: extra params to log with the optimizer's (dict). Defaults to none.
        model_summary: log ``model_summary.txt`` as autolog does. Defaults to True.

    Re-logging a param with the same value is accepted by MLflow, so a resumed fit
    (``initial_epoch > 0``) into the same run logs nothing twice but its new epochs.
    """

    def __init__(self, sink=None, params=None, model_summary=True):
        super().__init__()
        self.sink = sink
        self.extra_params = dict(params or {})
        self.model_summary = model_summary
        self._sink = None
        self._start = None

    def on_train_begin(self, logs=None):
        self._sink = self.sink if self.sink is not None else _ActiveRunSink()
        params = optimizer_params(self.model.optimizer)
        if "epochs" in self.params:
            params["epochs"] = self.params["epochs"]
        params.update(self.extra_params)
        self._sink.log_params(params)
        if self.model_summary and hasattr(self._sink, "log_text"):
            lines = []
            self.model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
            self._sink.log_text("\n".join(lines), "model_summary.txt")

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        triples = [(key, float(value), epoch) for key, value in (logs or {}).items()
                   if np.ndim(value) == 0]
        if LEARNING_RATE_METRIC not in (logs or {}):  # Keras adds it with a LearningRateScheduler
            lr = float(_numpy(self.model.optimizer.learning_rate))
            triples.append((LEARNING_RATE_METRIC, lr, epoch))
        if self._start is not None:
            triples.append((EPOCH_TIME_METRIC, time.perf_counter() - self._start, epoch))
        self._sink.log_metrics(triples)
