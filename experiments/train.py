"""One training run: a workload, an optimizer, a seed -> one MLflow run.

Command line (``python -m experiments.train --help``)::

    python -m experiments.train --optimizer amsgrad --learning-rate 1e-3 --workload digits_mlp \\
        --epochs 10 --batch-size 128 --seed 0 --opt beta_2=0.99 --checkpoint-dir ckpt/amsgrad

Python::

    from experiments.train import TrainConfig, run
    result = run(TrainConfig(optimizer="amsgrad", workload="digits_mlp", epochs=3))
    result.run_id, result.history["val_accuracy"]

What one run logs (to the store chosen by :mod:`experiments.tracking`):

* params: ``optimizer`` (the name asked for), ``optimizer.class`` and every key of the
  optimizer's ``get_config()`` as ``optimizer.<key>``; ``workload``, ``dataset`` (+ version and
  split sizes), ``batch_size``, ``epochs``, ``seed``, ``jit``, ``device``, ``strategy``,
  ``log_every``, ``model.params``;
* metrics per epoch, step = epoch number (1 = after the first epoch): ``loss``, ``accuracy``,
  ``val_loss``, ``val_accuracy``, ``lr``, ``epoch_time`` (seconds, training + validation),
  ``examples_per_second`` (training only); and every ``log_every`` steps, step = global step
  (1-based): ``train_loss_step``, the mean training loss over the steps since the previous point.
  All metrics go through ``MlflowClient.log_batch`` (per epoch, and at least every 15 s);
* tags: package, Keras, TensorFlow, MLflow versions, git commit, device description, model URI;
* the dataset as a run input (``mlflow.log_input``); artifacts ``config.json`` (the resolved
  configuration) and ``learning_curve.png``; the trained model through ``mlflow.keras.log_model``
  (reload it with ``mlflow.keras.load_model(uri, custom_objects=kav.custom_objects())``).

With ``--checkpoint-dir`` the model and optimizer state are saved atomically at each epoch end,
with the run id; the same command run again after a crash resumes from the last completed epoch
into the same MLflow run, and ends with the weights an uninterrupted run would have (the data
order of each epoch depends on (seed, epoch) only).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import json
import logging
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

import keras_adam_variants as kav  # noqa: E402
from experiments import datasets, tracking, workloads  # noqa: E402

log = logging.getLogger("experiments.train")

KERAS_ADAM = "keras_adam"  # Keras' own keras.optimizers.Adam, as a control
STEP_FLUSH_SECONDS = 15.0
STATE_FILE = "state.json"
EPOCH_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "epoch_time",
              "examples_per_second")
STEP_KEY = "train_loss_step"


class ConfigError(ValueError):
    """A run's configuration cannot work (bad name, value, device, or checkpoint mismatch)."""


@dataclass
class TrainConfig:
    """Everything that defines one run. ``learning_rate=None`` keeps the optimizer's default;
    ``opt`` holds extra optimizer constructor arguments (``{"beta_2": 0.99}``)."""

    optimizer: str = "adam"
    learning_rate: float | None = None  # None = the optimizer's default
    opt: dict = field(default_factory=dict)
    workload: str = "digits_mlp"
    epochs: int = 10
    batch_size: int = 128
    seed: int = 0
    jit: bool = True
    device: str = "cpu"
    strategy: str = "none"
    tracking_uri: str | None = None
    experiment: str = "kav-train"
    checkpoint_dir: str | None = None
    log_every: int = 10
    run_name: str | None = None
    log_model: bool = True
    data_dir: str | None = None  # TFDS data dir; None = TFDS's default (TFDS_DATA_DIR)
    effective_lr_every: int = 0  # log kav.callbacks.AdaptiveLRLogger every N steps (0: off)
    effective_lr_histograms: bool = True  # with it, a histogram PNG per epoch (costs CPU time)


@dataclass
class TrainResult:
    """``history`` holds one value per epoch for each of ``loss``, ``accuracy``, ``val_loss``,
    ``val_accuracy``, ``lr``, ``epoch_time`` (and ``examples_per_second``), over the whole run
    (resumed runs included)."""

    run_id: str
    history: dict[str, list[float]]
    epoch_times: list[float]


# ---- optimizers -----------------------------------------------------------------------------------

def optimizer_names() -> list[str]:
    """Names ``build_optimizer`` accepts: the package's optimizers, and ``keras_adam``."""
    return kav.names() + [KERAS_ADAM]


def optimizer_class(name: str):
    """The class for ``name``: ``keras.optimizers.Adam`` for ``keras_adam``, else ``kav.get``."""
    if name.lower().replace("-", "_") == KERAS_ADAM:
        return keras.optimizers.Adam
    try:
        return kav.get(name)
    except ValueError:
        raise ValueError(f"unknown optimizer {name!r}: expected one of "
                         f"{', '.join(optimizer_names())} (case-insensitive)") from None


def build_optimizer(name: str, learning_rate: float | None, opt: dict) -> keras.optimizers.Optimizer:
    """A new optimizer ``name`` with ``learning_rate`` (None: its default) and arguments ``opt``.

    Unknown or invalid arguments raise the optimizer's own ``ValueError``.
    """
    kwargs = dict(opt)
    if learning_rate is not None:
        kwargs["learning_rate"] = learning_rate
    return optimizer_class(name)(**kwargs)


def optimizer_params(name: str, optimizer) -> dict[str, str]:
    """MLflow params describing ``optimizer``: its name, class and full ``get_config()``."""
    params = {"optimizer": name, "optimizer.class": keras.saving.get_registered_name(type(optimizer))}
    for key, value in optimizer.get_config().items():
        params[f"optimizer.{key}"] = value
    return params


# ---- devices ----------------------------------------------------------------------------------

def _devices(config: TrainConfig) -> list[str]:
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


def describe_device(config: TrainConfig, devices: list[str]) -> str:
    """A human description of the hardware the run trains on."""
    import tensorflow as tf

    if config.device == "gpu":
        names = []
        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
        what = ", ".join(names)
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
        what += f"; MirroredStrategy over {len(devices)} devices: {', '.join(devices)}"
    return what


def _validate(config: TrainConfig):
    if keras.backend.backend() != "tensorflow":
        raise ConfigError(f"experiments need the TensorFlow backend, Keras uses "
                          f"{keras.backend.backend()!r} (set KERAS_BACKEND=tensorflow)")
    try:
        workload = workloads.get(config.workload)
        datasets.get(workload.dataset)
        build_optimizer(config.optimizer, config.learning_rate, config.opt)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if config.device not in ("cpu", "gpu"):
        raise ConfigError(f"--device must be cpu or gpu, not {config.device!r}")
    if config.strategy not in ("none", "mirrored"):
        raise ConfigError(f"--strategy must be none or mirrored, not {config.strategy!r}")
    if config.epochs < 1 or config.batch_size < 1:
        raise ConfigError("--epochs and --batch-size must be at least 1")
    return workload, _devices(config)


# ---- checkpoints ---------------------------------------------------------------------------------

def _jsonable(value):
    return json.loads(json.dumps(value, default=repr))


def _identity(config: TrainConfig) -> dict:
    """The settings a checkpoint must share with the command that resumes it."""
    ident = dataclasses.asdict(config)
    logging_only = ("checkpoint_dir", "run_name", "log_model", "effective_lr_every",
                    "effective_lr_histograms")
    for key in logging_only:
        ident.pop(key)
    ident["tracking_uri"] = tracking.resolve_uri(config.tracking_uri)
    return _jsonable(ident)


class Checkpoints:
    """``<dir>/state.json`` (run id, epochs done, history) and ``<dir>/epoch-NNNNN.keras``.

    Each file is written under a temporary name and renamed into place; ``state.json`` is
    written last and names the model file, so a crash at any point leaves a consistent pair.
    """

    def __init__(self, directory: str):
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.path = os.path.join(self.directory, STATE_FILE)

    def read(self) -> dict | None:
        if not os.path.exists(self.path):
            return None
        with open(self.path) as f:
            return json.load(f)

    def write(self, state: dict) -> None:
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def save_model(self, model, epoch: int) -> str:
        name = f"epoch-{epoch:05d}.keras"
        tmp = os.path.join(self.directory, f"partial-{os.getpid()}-{name}")
        model.save(tmp)
        os.replace(tmp, os.path.join(self.directory, name))
        return name

    def model_path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def prune(self, keep: str) -> None:
        """Remove model files other than ``keep`` (older epochs, leftovers of a crash)."""
        for entry in os.listdir(self.directory):
            if entry.endswith(".keras") and entry != keep:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.directory, entry))


# ---- the logging callback ------------------------------------------------------------------------

class RunLogger(keras.callbacks.Callback):
    """Collects per-epoch and per-step metrics, logs them in batches, checkpoints each epoch.

    Values already in the run (logged before a crash, then re-trained identically after the
    resume) are not logged again: ``logged`` maps each metric key to the last step it has.
    """

    def __init__(self, client, run_id, data, batch_size, log_every, state, checkpoints, logged):
        super().__init__()
        self.client, self.run_id, self.data = client, run_id, data
        self.batch_sizes = data.batch_sizes(batch_size)
        self.log_every = log_every
        self.state, self.checkpoints, self.logged = state, checkpoints, logged
        self.buffer = []
        self.pending = []  # MLflow's queued log_batch operations, not yet confirmed
        self.last_flush = time.monotonic()

    def _add(self, key, value, step):
        if step > self.logged.get(key, -1):
            self.buffer.append((key, value, step))

    def flush(self):
        """Queue the buffered values (MLflow's background queue: a synchronous log_batch costs
        10-20 ms, several percent of a short epoch; see benchmarks/tracking_overhead.py)."""
        if self.buffer:
            self.pending += tracking.log_metrics(
                self.client, self.run_id, self.buffer, synchronous=False
            )
            self.buffer = []
        self.last_flush = time.monotonic()

    def wait(self):
        """Block until every queued value is stored (raises if logging failed)."""
        self.flush()
        for op in self.pending:
            op.wait()
        self.pending = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()
        self.train_time = None
        self.seen = 0       # examples so far in this epoch
        self.mark = (0, 0.0)  # (examples, summed loss) at the previous step-loss point

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

    def on_test_begin(self, logs=None):
        if self.train_time is None:
            self.train_time = time.perf_counter() - self.t0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        elapsed = time.perf_counter() - self.t0
        train_time = self.train_time or elapsed
        number = epoch + 1
        values = {key: float(logs[key]) for key in ("loss", "accuracy", "val_loss", "val_accuracy")
                  if key in logs}
        values["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        values["epoch_time"] = elapsed
        values["examples_per_second"] = self.data.num_train / train_time
        history = self.state["history"]
        for key, value in values.items():
            history.setdefault(key, []).append(value)
            self._add(key, value, number)
        self.flush()
        log.info("epoch %d/%d  %s", number, self.params.get("epochs", 0),
                 "  ".join(f"{k} {v:.4g}" for k, v in values.items()))
        self.state["epoch"] = number
        if self.checkpoints is not None:
            self.wait()  # a checkpoint never gets ahead of the metrics stored in its run
            self.state["model"] = self.checkpoints.save_model(self.model, number)
            self.checkpoints.write(self.state)
            self.checkpoints.prune(keep=self.state["model"])

    def on_train_end(self, logs=None):
        self.wait()


# ---- artifacts -----------------------------------------------------------------------------------

def learning_curve(history: dict, title: str):
    """A matplotlib Figure: loss and accuracy per epoch, train and validation."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4), tight_layout=True)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = history.get(prefix + key, [])
            ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_yscale("log")
    fig.suptitle(title)
    return fig


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged model (given explicitly: MLflow's inference cannot import
    the package's optimizers and wastes seconds)."""
    from importlib import metadata

    reqs = []
    for dist in ("keras-adam-variants", "keras", "tensorflow", "tensorflow-cpu", "numpy", "mlflow"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            reqs.append(f"{dist}=={metadata.version(dist)}")
    return reqs


def _log_dataset(data) -> None:
    import mlflow
    import tensorflow as tf

    def features(x, y):
        return x

    def targets(x, y):
        return tf.reshape(y, [1])  # MLflow infers schemas from arrays, not NumPy scalars

    for split, context in (("train", "training"), ("test", "evaluation")):
        raw = data.builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": both local
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_tensorflow(
                features=raw.map(features), targets=raw.map(targets),
                source=data.data_dir, name=f"{data.name}-{split}",
                digest=f"{data.digest()}{split[:2]}")
        mlflow.log_input(dataset, context=context)


# ---- the run -------------------------------------------------------------------------------------

def _previously_logged(client, run_id) -> dict[str, int]:
    logged = {}
    for key in (*EPOCH_KEYS, STEP_KEY):
        history = client.get_metric_history(run_id, key)
        if history:
            logged[key] = max(m.step for m in history)
    return logged


def _effective_lr_logger(config: TrainConfig, run_id: str) -> list:
    """[AdaptiveLRLogger] when ``config.effective_lr_every`` > 0 (per-layer effective learning
    rates, update ratios and epoch histograms in the run), else []."""
    if config.effective_lr_every <= 0:
        return []
    return [
        kav.callbacks.AdaptiveLRLogger(
            every_n_steps=config.effective_lr_every,
            run_id=run_id,
            histogram=config.effective_lr_histograms,
        )
    ]


def run(config: TrainConfig, parent_run_id: str | None = None, callbacks=()) -> TrainResult:
    """Train ``config`` and log it as one MLflow run (nested under ``parent_run_id`` if given).

    ``callbacks`` are extra Keras callbacks, appended after the logger. Raises
    :class:`ConfigError`, :class:`experiments.datasets.DatasetNotPreparedError` or
    :class:`experiments.tracking.TrackingUnavailableError` before any training when the
    configuration, the data or the tracking store is not usable.
    """
    import mlflow
    import tensorflow as tf

    workload, devices = _validate(config)
    checkpoints = Checkpoints(config.checkpoint_dir) if config.checkpoint_dir else None
    state = checkpoints.read() if checkpoints else None
    identity = _identity(config)
    if state is not None and state["config"] != identity:
        saved = state["config"]
        diff = "; ".join(f"{k}: {saved.get(k)!r} there, {identity[k]!r} here"
                         for k in sorted(identity) if identity[k] != saved.get(k))
        raise ConfigError(
            f"checkpoint dir {checkpoints.directory} belongs to a run with other settings "
            f"({diff}); rerun with the same settings to resume, or use another --checkpoint-dir")
    datasets.ensure_available(workload.dataset, config.data_dir)
    experiment_id = tracking.setup(config.tracking_uri, config.experiment)
    client = mlflow.MlflowClient()
    if state is not None and state.get("finished"):
        log.info("run %s already finished (checkpoint dir %s)", state["run_id"], checkpoints.directory)
        return TrainResult(state["run_id"], state["history"], list(state["history"]["epoch_time"]))
    data = datasets.load(workload.dataset, data_dir=config.data_dir)

    keras.utils.set_random_seed(config.seed)
    jit = config.jit
    if jit and config.strategy == "mirrored" and config.device == "cpu" and len(devices) > 1:
        # XLA compiles the step for one CPU device and cannot reach variables mirrored on the
        # others ("Trying to access resource ... located in device CPU:1"); GPUs are fine.
        log.warning("XLA is off: it cannot compile a step mirrored over %d CPU devices",
                    len(devices))
        jit = False
    if config.strategy == "mirrored":
        strategy = tf.distribute.MirroredStrategy(devices=devices)
        scope = strategy.scope  # a new context manager each time it is entered
    else:
        def scope():
            return tf.device(devices[0])
    resolved = {
        "config": dataclasses.asdict(config), "experiment_id": experiment_id,
        "tracking_uri": tracking.resolve_uri(config.tracking_uri),
        "workload": {"name": workload.name, "description": workload.description},
        "dataset": {"name": data.name, "tfds_name": data.spec.tfds_name, "version": data.version,
                    "data_dir": data.data_dir, "num_train": data.num_train,
                    "num_test": data.num_test, "input_shape": list(data.input_shape)},
        "devices": devices, "jit": jit,
    }
    with scope():
        model = workload.build_model(data.input_shape, data.num_classes)
        optimizer = build_optimizer(config.optimizer, config.learning_rate, config.opt)
        model.compile(optimizer=optimizer, loss=workload.loss(), metrics=workload.metrics(),
                      jit_compile=jit)
        if state is not None and state.get("model"):
            optimizer.build(model.trainable_variables)
            model.load_weights(checkpoints.model_path(state["model"]))
            log.info("resumed from %s (epoch %d)", state["model"], state["epoch"])
    resolved["optimizer"] = {"class": keras.saving.get_registered_name(type(optimizer)),
                             "config": _jsonable(optimizer.get_config())}
    device_text = describe_device(config, devices)

    active = mlflow.active_run() is not None
    if state is None:
        tags = {**tracking.version_tags(), "device": device_text, "workload": workload.name}
        with mlflow.start_run(experiment_id=experiment_id, run_name=config.run_name,
                              nested=active, parent_run_id=parent_run_id, tags=tags) as started:
            run_id = started.info.run_id
            params = {**optimizer_params(config.optimizer, optimizer),
                      "learning_rate": config.learning_rate, "workload": workload.name,
                      "dataset": data.name, "dataset.version": data.version,
                      "dataset.num_train": data.num_train, "dataset.num_test": data.num_test,
                      "batch_size": config.batch_size, "epochs": config.epochs,
                      "seed": config.seed, "jit": jit, "device": config.device,
                      "strategy": config.strategy, "replicas": len(devices) if
                      config.strategy == "mirrored" else 1, "log_every": config.log_every,
                      "model.params": model.count_params()}
            mlflow.log_params(params)
            mlflow.log_dict(_jsonable(resolved), "config.json")  # schedules: by repr
            _log_dataset(data)
        state = {"run_id": run_id, "config": identity, "epoch": 0, "model": None,
                 "global_step": 0, "history": {}, "finished": False}
        if checkpoints is not None:
            checkpoints.write(state)
        logged = {}
    else:
        run_id = state["run_id"]
        logged = _previously_logged(client, run_id)

    with mlflow.start_run(run_id=run_id, nested=active) as current:
        mlflow.set_tag("device", device_text)
        logger = RunLogger(client, run_id, data, config.batch_size, config.log_every, state,
                           checkpoints, logged)
        start_epoch = state["epoch"]
        with scope():
            if start_epoch < config.epochs:
                steps = data.steps_per_epoch(config.batch_size)
                model.fit(data.train_batches(config.batch_size, config.seed, start_epoch,
                                             config.epochs),
                          epochs=config.epochs, initial_epoch=start_epoch, steps_per_epoch=steps,
                          validation_data=data.test_batches(config.batch_size),
                          callbacks=[logger, *_effective_lr_logger(config, run_id), *callbacks],
                          shuffle=False, verbose=0)
            mlflow.log_figure(learning_curve(state["history"], f"{workload.name} / "
                                             f"{config.optimizer} / seed {config.seed}"),
                              "learning_curve.png")
            if config.log_model:
                from mlflow.models import infer_signature

                sample = data.sample(32)
                signature = infer_signature(sample, model.predict(sample, verbose=0))
                info = mlflow.keras.log_model(model, name="model", signature=signature,
                                              pip_requirements=pip_requirements())
                mlflow.set_tag("model_uri", info.model_uri)
                state["model_uri"] = info.model_uri
        state["finished"] = True
        if checkpoints is not None:
            checkpoints.write(state)
        assert current.info.run_id == run_id
    history = {k: list(v) for k, v in state["history"].items()}
    return TrainResult(run_id, history, list(history.get("epoch_time", [])))


# ---- command line --------------------------------------------------------------------------------

def _parse_opt(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--opt expects KEY=VALUE, got {text!r}")
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value  # a bare word: a string
    return key.strip(), parsed


def make_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(
        prog="python -m experiments.train",
        description="Train one workload with one optimizer and log the run to MLflow.",
        epilog="Workloads: " + ", ".join(workloads.names()) + ". Optimizers: "
        + ", ".join(optimizer_names()) + ". Exit status 2 on a configuration, data or tracking "
        "error (message, no traceback).",
    )
    p.add_argument("--optimizer", default=defaults.optimizer,
                   help=f"optimizer name, case-insensitive (default {defaults.optimizer}); "
                        f"'{KERAS_ADAM}' is keras.optimizers.Adam, as a control")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="learning rate (default: the optimizer's own default)")
    p.add_argument("--opt", type=_parse_opt, action="append", default=[], metavar="KEY=VALUE",
                   help="extra optimizer argument, repeatable; VALUE is a Python literal "
                        "(--opt beta_2=0.99 --opt amsgrad=True)")
    p.add_argument("--workload", default=defaults.workload,
                   help=f"dataset + model (default {defaults.workload}); see the list below")
    p.add_argument("--epochs", type=int, default=defaults.epochs,
                   help=f"passes over the training split (default {defaults.epochs})")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size,
                   help=f"global batch size, split over replicas when mirrored (default "
                        f"{defaults.batch_size})")
    p.add_argument("--seed", type=int, default=defaults.seed,
                   help="seeds weight initialisation and the data order of each epoch")
    p.add_argument("--jit", action=argparse.BooleanOptionalAction, default=defaults.jit,
                   help="compile the train step with XLA (default: on)")
    p.add_argument("--device", choices=("cpu", "gpu"), default=defaults.device,
                   help="train on the CPU (default) or the GPU(s); gpu fails at once if "
                        "TensorFlow sees none")
    p.add_argument("--strategy", choices=("none", "mirrored"), default=defaults.strategy,
                   help="mirrored: tf.distribute.MirroredStrategy over all devices of --device")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                        "sqlite:///<cwd>/mlruns/mlflow.db)")
    p.add_argument("--experiment", default=defaults.experiment,
                   help=f"MLflow experiment name (default {defaults.experiment})")
    p.add_argument("--checkpoint-dir", default=None,
                   help="save model + optimizer state each epoch here; rerunning the same "
                        "command resumes the same MLflow run from the last epoch")
    p.add_argument("--log-every", type=int, default=defaults.log_every, metavar="N",
                   help="log the training loss every N steps (0: never; default "
                        f"{defaults.log_every})")
    p.add_argument("--run-name", default=None, help="MLflow run name (default: MLflow's)")
    p.add_argument("--log-effective-lr", dest="effective_lr_every", type=int, nargs="?",
                   const=50, default=defaults.effective_lr_every, metavar="N",
                   help="log each layer's effective learning rates (median, 5th/95th "
                        "percentiles), update/weight norm ratio and zero-step fraction every N "
                        "steps (default N 50 when given without a value), and a histogram per "
                        "epoch (kav.callbacks.AdaptiveLRLogger)"),
    p.add_argument("--no-log-model", dest="log_model", action="store_false",
                   help="do not log the trained model")
    p.add_argument("--data-dir", default=None,
                   help="TFDS data dir (default: $TFDS_DATA_DIR, else ~/tensorflow_datasets)")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["opt"] = dict(args.opt)
    return TrainConfig(**values)


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = config_from_args(args)
    try:
        result = run(config)
    except (ConfigError, datasets.DatasetNotPreparedError, tracking.TrackingUnavailableError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"run_id {result.run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
