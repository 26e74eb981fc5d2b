"""One training run: a workload, an optimizer, a seed -> one MLflow run.

Command line (``python -m experiments.train --help``)::

    python -m experiments.train --optimizer amsgrad --learning-rate 1e-3 --workload digits_mlp \\
        --epochs 10 --batch-size 128 --seed 0 --opt beta_2=0.99 --checkpoint-dir ckpt/amsgrad

Python::

    from .train import TrainConfig, run
    result = run(TrainConfig(optimizer="amsgrad", workload="digits_mlp", epochs=3))
    result.run_id, result.history["val_accuracy"]

What one run logs (to the store chosen by :mod:`experiments.tracking`), all through one
non-blocking tracking writer (an unreachable server costs the run nothing: what it logs waits in a
durable spool and is delivered, in order, once):

Names are ``mlflow.keras.autolog``'s (and :class:`keras_adam_variants.callbacks.MlflowLogger`'s),
so a user's autologged fits and these runs line up in one MLflow Compare view:

* params: every key of the optimizer's ``get_config()`` as ``optimizer_<key>``
  (``optimizer_learning_rate``, ``optimizer_beta_2``, ...), ``optimizer_name`` = the
  package-qualified class (``keras_adam_variants.AMSGrad``; Keras' own Adam is
  ``keras.optimizers.Adam``), ``optimizer`` (the name asked for, e.g. ``amsgrad``); ``workload``,
  ``dataset`` (+ version and split sizes), ``batch_size``, ``epochs``, ``seed``, ``jit``,
  ``device``, ``strategy``, ``log_every``, ``model.params``;
* metrics (:mod:`experiments.run_logger`), per epoch at step = epoch counting from 0 (autolog's
  step): ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``, ``learning_rate`` (the rate in
  use at the epoch's end), ``epoch_time``, ``examples_per_second``; every ``log_every`` steps,
  at the global step (1 = after the first batch): ``train_loss_step``;
* tags: package, Keras, TensorFlow, MLflow versions, git commit, device, ``kav.run_key``, model URI;
* the dataset as a run input; artifacts ``config.json`` (the resolved configuration),
  ``model_summary.txt`` and ``learning_curve.png`` (unless ``log_learning_curve`` is off:
  studies draw it only with ``--child-plots``); the trained model (:func:`log_model`, with
  :mod:`keras_adam_variants.mlflow_models`: ``mlflow.pyfunc.load_model(uri)`` and ``mlflow models
  serve`` work in a fresh process).

Kills and crashes lose nothing. Every run keeps a checkpoint directory (``--checkpoint-dir``, else
``<store dir>/checkpoints/<experiment>/<hash of the settings>``, see
:mod:`experiments.checkpoints`): the run's key is written there before the MLflow run is created
(and the run is found again by that key), the model and optimizer state after every epoch with
its SHA-256. The same command run again after a kill at any moment resumes into the same MLflow
run and ends with the weights an uninterrupted run would have (the data order of each epoch
depends on (seed, epoch) only). A finished run's default checkpoint directory is removed, so the
same command later starts a new run; an explicit ``--checkpoint-dir`` keeps it (a rerun says
"already finished").

Everything that can be checked is checked before any run is created: numbers, names, the store,
the checkpoint directory (writable, not in use, its files whole and this run's), the working
directory, the TFDS data (files, sizes, every record's checksum). Every failure ends with one
``error:`` line and exit status 2 (:mod:`experiments.errors`; ``--debug`` shows the traceback).
This module imports nothing heavy at load time: ``--help`` and argument errors are instant.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import logging
import os
import sys

from . import checkpoints as ckpt
from . import faults
from .config import (  # noqa: F401 (re-exported: the runner's public names)
    EPOCH_KEYS, KERAS_ADAM, PACKAGE_OPTIMIZERS, STEP_KEY, ConfigError, TrainConfig, TrainResult,
    identity, jsonable, optimizer_label, validate)
from .errors import ArgumentParser, add_debug_flag, cli_errors, error, one_line

if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

log = logging.getLogger("experiments.train")

EXIT_SPOOLED = 3  # training done, but the tracking server was unreachable: spool left to deliver
STATE_FILE = ckpt.STATE_FILE
RESUME_FLUSH_TIMEOUT = 30.0  # seconds to deliver a killed process's spool before resuming


# ---- optimizers -----------------------------------------------------------------------------------

def optimizer_names() -> list[str]:
    """Names ``build_optimizer`` accepts: the package's optimizers, and ``keras_adam``."""
    return [*PACKAGE_OPTIMIZERS, KERAS_ADAM]


def optimizer_class(name: str):
    """The class for ``name``: ``keras.optimizers.Adam`` for ``keras_adam``, else ``kav.get``.
    An unknown name raises :class:`ConfigError` (a ``ValueError``) before Keras is imported."""
    label = optimizer_label(name)
    import keras

    import keras_adam_variants as kav

    return keras.optimizers.Adam if label == KERAS_ADAM else kav.get(label)


def build_optimizer(name: str, learning_rate: float | None, opt: dict):
    """A new optimizer ``name`` with ``learning_rate`` (None: its default) and arguments ``opt``.

    Unknown or invalid arguments raise the optimizer's own ``ValueError``.
    """
    kwargs = dict(opt)
    if learning_rate is not None:
        kwargs["learning_rate"] = learning_rate
    return optimizer_class(name)(**kwargs)


def _validate(config: TrainConfig):
    """Check the names and the device (imports Keras); return (workload, devices)."""
    import keras

    from . import datasets, devices, workloads

    validate(config)
    if keras.backend.backend() != "tensorflow":
        raise ConfigError(f"experiments need the TensorFlow backend, Keras uses "
                          f"{keras.backend.backend()!r} (set KERAS_BACKEND=tensorflow)")
    try:
        workload = workloads.get(config.workload)
        datasets.get(workload.dataset)
        build_optimizer(config.optimizer, config.learning_rate, config.opt)
    except (ValueError, TypeError) as err:
        raise ConfigError(one_line(err)) from None
    return workload, devices.devices(config)


# ---- artifacts -----------------------------------------------------------------------------------

def learning_curve(history: dict, title: str):
    """A matplotlib Figure: loss and accuracy per epoch (x = the epoch from 0, the step of the
    run's metrics), train and validation."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4), tight_layout=True)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, key in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = history.get(prefix + key, [])
            ax.plot(range(len(values)), values, marker="o", label=label)
        ax.set_xlabel("epoch (from 0, the MLflow step)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_loss.set_yscale("log")
    fig.suptitle(title)
    return fig


def log_model(model, data, run_id: str) -> str:
    """Log ``model`` to run ``run_id`` of the current tracking URI with
    :func:`keras_adam_variants.mlflow_models.log_model` (a Keras model that loads with
    ``mlflow.pyfunc.load_model`` and serves with ``mlflow models serve --env-manager local`` in a
    fresh process; its requirements list ``keras-adam-variants``), signature inferred from 32
    test inputs; return its model URI (``models:/<model id>``).

    Starts and ends no MLflow run: the run stays RUNNING (it ends when everything it logged is
    stored). Needs the tracking store reachable.
    """
    from mlflow.models import infer_signature

    from keras_adam_variants import mlflow_models

    sample = data.sample(32)
    signature = infer_signature(sample, model.predict(sample, verbose=0))
    info = mlflow_models.log_model(model, name="model", signature=signature, run_id=run_id)
    return info.model_uri


def _model_summary(model) -> str:
    """``model.summary()`` as text (the ``model_summary.txt`` artifact autolog logs)."""
    lines = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    return "\n".join(lines)


def _model_logged_before(client, run_id: str) -> str | None:
    """The URI of a complete model logged to ``run_id`` by a process killed before it recorded
    it (so a rerun does not log a second one), else None."""
    from mlflow.entities import LoggedModelStatus

    run = client.get_run(run_id)
    for output in (run.outputs.model_outputs if run.outputs else []):
        found = client.get_logged_model(output.model_id)
        if found.status == LoggedModelStatus.READY and found.name == "model":
            return f"models:/{output.model_id}"
    return None


def _log_dataset(client, run_id: str, data) -> None:
    """The train and test splits as the run's inputs (:func:`experiments.datasets.mlflow_dataset`:
    per-example schema, e.g. ``[-1, 8, 8, 1]`` for digits), contexts training and evaluation.
    Logged again after a kill: MLflow keeps one input per dataset digest."""
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    from . import datasets

    inputs = [DatasetInput(datasets.mlflow_dataset(data, split)._to_mlflow_entity(),
                           tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])
              for split, context in (("train", "training"), ("test", "evaluation"))]
    client.log_inputs(run_id, datasets=inputs)


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
    import keras_adam_variants as kav

    return [
        kav.callbacks.AdaptiveLRLogger(
            every_n_steps=config.effective_lr_every,
            run_id=run_id,
            histogram=config.effective_lr_histograms,
        )
    ]


def _check_artifact_location(client, experiment_id: str) -> None:
    """A local artifact location must be writable (checked before any run is created)."""
    from urllib.parse import urlparse

    location = client.get_experiment(experiment_id).artifact_location or ""
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme == "file" else location
        ckpt.require_writable_dir(path, "the experiment's artifact location",
                                  "make it writable, or log to another --experiment or store")


def _check_run_in_store(client, state: dict, where: str, key: str) -> object:
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_run(state["run_id"])
    except MlflowException:
        found = None
    if found is None or found.info.lifecycle_stage == "deleted":
        raise ConfigError(
            f"checkpoint state {where} names run {state['run_id']}, which the tracking store does "
            "not have (deleted, or another store); use the store it was made with, or delete the "
            "checkpoint dir to start a new run")
    if found.data.tags.get("kav.run_key", key) != key:
        raise ConfigError(
            f"checkpoint state {where} names run {state['run_id']}, whose run key in the store "
            f"is not this checkpoint's ({key}); delete the checkpoint dir to start a new run")
    return found


def _result(state: dict, writer=None, delivered=True, spool_dir=None) -> TrainResult:
    history = {k: list(v) for k, v in state["history"].items()}
    return TrainResult(state["run_id"], history, list(history.get("epoch_time", [])),
                       delivered=delivered, pending=writer.pending() if writer else 0,
                       spool_dir=spool_dir)


def run(config: TrainConfig, parent_run_id: str | None = None, callbacks=(),
        models=None) -> TrainResult:
    """Train ``config`` and log it as one MLflow run (nested under ``parent_run_id`` if given).

    ``callbacks`` are extra Keras callbacks, appended after the logger (there is no active
    fluent MLflow run during ``fit``: give them the run id). ``models``: an
    :class:`experiments.model_reuse.CompiledModels` of this process (studies pass one), from
    which the compiled model is taken when one of the same settings was trained before, put back
    into the state of a fresh build with this seed (its train and test functions are not traced
    again; the values logged are the same); not used with ``strategy="mirrored"``, nor for a run
    that resumes from a checkpoint. Raises :class:`ConfigError`,
    :class:`experiments.datasets.DatasetNotPreparedError` or
    :class:`experiments.tracking.TrackingUnavailableError` before any run is created when the
    configuration, the checkpoint directory, the data or the store is not usable. Returns
    ``delivered=False`` when the tracking server stayed unreachable at the end (see
    :class:`TrainResult`).
    """
    from . import tracking

    validate(config)
    ckpt.require_writable_dir(os.getcwd(), "the working directory",
                              "run the command from a writable directory", create=False)
    _check_data(config)
    explicit = config.checkpoint_dir is not None
    checkpoints, new_dir, remove = None, False, False
    try:
        if explicit:  # local checks first: they take milliseconds, the store takes seconds
            checkpoints = ckpt.Checkpoints(config.checkpoint_dir)
            state = checkpoints.read(config.epochs)
        uri = tracking.open_store(config.tracking_uri)
        ident = identity(config, uri, parent_run_id)
        if not explicit:
            directory = ckpt.default_dir(uri, config.experiment, ident)
            new_dir = not os.path.exists(directory)
            checkpoints = ckpt.Checkpoints(
                directory, "the default checkpoint dir (under the tracking store; choose one "
                "with --checkpoint-dir)")
            state = checkpoints.read(config.epochs)
        result, remove = _run(config, parent_run_id, callbacks, uri, ident, checkpoints, state,
                              explicit, tracking, models)
    except BaseException:
        # Refused before any run key was written: leave no empty default directory behind.
        remove = (checkpoints is not None and new_dir and not explicit
                  and not os.path.exists(checkpoints.key_path))
        raise
    finally:
        if checkpoints is not None:
            checkpoints.close()
            if remove:
                checkpoints.remove()
    return result


def default_run_name(config: TrainConfig) -> str:
    """``<optimizer>[-lr<rate>]-seed<seed>`` (compare's children are named ``<arm>-seed<seed>``).

    Not MLflow's random name: that comes from Python's ``random``, which the seed fixes, so every
    run of one seed would get the same one."""
    lr = f"-lr{config.learning_rate:g}" if config.learning_rate is not None else ""
    return f"{config.optimizer}{lr}-seed{config.seed}"


def _check_data(config: TrainConfig):
    """The workload's dataset name and its prepared TFDS directory (None: to be prepared), after
    the checks that need no TensorFlow (names, files, sizes)."""
    from . import datasets, workloads

    try:
        dataset_name = workloads.get(config.workload).dataset
        datasets.get(dataset_name)
    except ValueError as err:
        raise ConfigError(one_line(err)) from None
    version_dir = datasets.check_files(dataset_name, config.data_dir)
    if version_dir is not None:
        datasets.verify_records(dataset_name, version_dir)
    return dataset_name, version_dir


def _run(config, parent_run_id, callbacks, uri, ident, checkpoints, state, explicit, tracking,
         models=None):
    """The body of :func:`run`, with the checkpoint directory open and its state read; returns
    (result, whether to remove the directory)."""
    from . import datasets

    key = checkpoints.run_key(ident)
    if state is not None and state["run_key"] != key:
        raise ConfigError(
            f"checkpoint state {checkpoints.path} belongs to run key {state['run_key']}, not to "
            f"this directory's {key} ({checkpoints.key_path}); delete {checkpoints.directory} to "
            "start a new run")
    workload, devices = _validate(config)

    import keras
    import mlflow
    import tensorflow as tf

    from . import devices as devices_mod
    from keras_adam_variants import callbacks as kav_callbacks
    from .run_logger import RunLogger

    experiment_id = tracking.setup(uri, config.experiment)
    mlflow.set_tracking_uri(uri)  # for log_model's fluent calls
    client = mlflow.MlflowClient(uri)
    _check_artifact_location(client, experiment_id)
    if state is not None:
        found = _check_run_in_store(client, state, checkpoints.path, key)
        if state["finished"]:
            return _finish_again(config, state, found, checkpoints, explicit, tracking, uri)
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
        "tracking_uri": uri,
        "workload": {"name": workload.name, "description": workload.description},
        "dataset": {"name": data.name, "tfds_name": data.spec.tfds_name, "version": data.version,
                    "data_dir": data.data_dir, "num_train": data.num_train,
                    "num_test": data.num_test, "input_shape": list(data.input_shape)},
        "devices": devices, "jit": jit,
    }

    def build():
        model = workload.build_model(data.input_shape, data.num_classes)
        optimizer = build_optimizer(config.optimizer, config.learning_rate, config.opt)
        model.compile(optimizer=optimizer, loss=workload.loss(), metrics=workload.metrics(),
                      jit_compile=jit)
        return model, optimizer

    resuming = state is not None and state["epoch"] > 0
    reuse_key = None
    if models is not None and config.strategy != "mirrored" and not resuming:
        from .model_reuse import model_key

        reuse_key = model_key(config, jit)
    with scope():
        if reuse_key is not None:  # the same state as build(): the same values trained
            model, optimizer = models.get(config.seed, build, key=reuse_key)
        else:
            model, optimizer = build()
        if resuming:
            optimizer.build(model.trainable_variables)
            model.load_weights(checkpoints.model_path(state["model"]))
            log.info("resumed from %s (epoch %d)", state["model"], state["epoch"])
    resolved["optimizer"] = {"class": kav_callbacks.qualified_name(optimizer),
                             "config": jsonable(optimizer.get_config())}
    device_text = devices_mod.describe(config, devices)

    if state is None:
        key = key or checkpoints.new_run_key(ident)  # on disk before the run exists
        tags = {**tracking.version_tags(), "device": device_text, "workload": workload.name}
        run_id, created = tracking.create_run(uri, experiment_id, key,
                                              run_name=config.run_name or default_run_name(config),
                                              parent_run_id=parent_run_id, tags=tags)
        if not created:
            log.info("found run %s of run key %s (created before a kill)", run_id, key)
        faults.point("run_created")
        state = {"run_id": run_id, "run_key": key, "epoch": 0, "model": None,
                 "global_step": 0, "history": {}, "finished": False, "setup_logged": False}
        checkpoints.write(state)
    run_id = state["run_id"]
    spool_dir = tracking.default_spool_dir(uri, run_id)
    writer = tracking.RunWriter(uri, run_id, spool_dir)
    try:
        logged = {}
        if state["epoch"] > 0 or state.get("setup_logged"):
            # A killed process may have left values in the spool: deliver them, then skip what
            # the store has (re-trained identically, they would be logged twice).
            if writer.flush(RESUME_FLUSH_TIMEOUT):
                logged = _previously_logged(client, run_id)
            else:
                # epoch metrics of epochs 0 .. state["epoch"] - 1 (step = epoch from 0)
                logged = {**{k: state["epoch"] - 1 for k in EPOCH_KEYS},
                          STEP_KEY: state["global_step"]}
        if not state.get("setup_logged"):
            # mlflow.keras.autolog's names (kav.callbacks.MlflowLogger's): optimizer_<key>,
            # optimizer_name = the package-qualified class; "optimizer" is the name asked for.
            params = {"optimizer": config.optimizer,
                      **kav_callbacks.optimizer_params(optimizer), "workload": workload.name,
                      "dataset": data.name, "dataset.version": data.version,
                      "dataset.num_train": data.num_train, "dataset.num_test": data.num_test,
                      "batch_size": config.batch_size, "epochs": config.epochs,
                      "seed": config.seed, "jit": jit, "device": config.device,
                      "strategy": config.strategy, "replicas": len(devices) if
                      config.strategy == "mirrored" else 1, "log_every": config.log_every,
                      "model.params": model.count_params()}
            writer.log_params(params)
            writer.log_dict(jsonable(resolved), "config.json")  # schedules: by repr
            writer.log_text(_model_summary(model), "model_summary.txt")  # as autolog
            _log_dataset(client, run_id, data)
            state["setup_logged"] = True
            checkpoints.write(state)
        writer.set_tags({"device": device_text})
        logger = RunLogger(writer, data, config.batch_size, config.log_every, state, checkpoints,
                           logged)
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
            if config.log_learning_curve:
                writer.log_figure(learning_curve(state["history"], f"{workload.name} / "
                                                 f"{config.optimizer} / seed {config.seed}"),
                                  "learning_curve.png")
            if config.log_model and not state.get("model_uri"):
                if not writer.flush(config.finish_timeout):
                    return _result(state, writer, False, spool_dir), False
                model_uri = _model_logged_before(client, run_id) or log_model(model, data, run_id)
                faults.point("model_logged")
                writer.set_tags({"model_uri": model_uri})
                state["model_uri"] = model_uri
        state["finished"] = True
        checkpoints.write(state)
        delivered = writer.finish("FINISHED", config.finish_timeout)
        return _result(state, writer, delivered, spool_dir), delivered and not explicit
    finally:
        writer.close()


def _finish_again(config, state, found, checkpoints, explicit, tracking, uri):
    """A rerun of a finished run: deliver what its spool still holds, end the run FINISHED."""
    run_id = state["run_id"]
    spool_dir = tracking.default_spool_dir(uri, run_id)
    writer = tracking.RunWriter(uri, run_id, spool_dir)
    try:
        delivered = True
        if writer.pending() or found.info.status != "FINISHED":
            log.info("run %s: delivering what was left in %s", run_id, spool_dir)
            delivered = writer.finish("FINISHED", config.finish_timeout)
        elif explicit:
            log.info("run %s already finished (checkpoint dir %s)", run_id, checkpoints.directory)
        return _result(state, writer, delivered, spool_dir), delivered and not explicit
    finally:
        writer.close()


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


def _int_at_least(low: int, high: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be an integer {bound}, got {value}")
        return value
    return parse


def _positive_float(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, got {text}")
    return value


def _prog() -> str:
    """``python -m experiments.train`` when run so, else ``kav train`` (the console script)."""
    if os.path.basename(sys.argv[0] if sys.argv else "") == "train.py":
        return "python -m experiments.train"
    return "kav train"


def make_parser() -> argparse.ArgumentParser:
    from .config import MAX_SEED

    defaults = TrainConfig()
    p = ArgumentParser(
        prog=_prog(),
        description="Train one workload with one optimizer and log the run to MLflow.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""\
Workloads and optimizers: kav train --list (or python -m experiments.train --list)

Kills and restarts: every run keeps a checkpoint directory (--checkpoint-dir, else
<store dir>/checkpoints/<experiment>/<hash of the settings>, where <store dir> is the SQLite
database's directory, or ./mlruns for a tracking server). The run's key is written there before
the MLflow run is created, the model and optimizer after each epoch. After a kill at any moment,
the same command resumes the same MLflow run from the last epoch, with the same final weights.
A finished run's default checkpoint directory is removed (the same command then starts a new
run); with --checkpoint-dir it is kept and a rerun says the run already finished.

Tracking outages: nothing waits on the tracking server. While it is unreachable, the progress
lines say so and what the run logs is kept in a spool on disk, delivered in order when it
answers again. If it is still unreachable --finish-timeout seconds after training, the command
says how much is spooled and where, and exits 3; rerun the same command (or
kav sync) to deliver it.

Exit status: 0 done; 2 a configuration, checkpoint, data or tracking-store problem, reported as
one 'error:' line before any run is created (--debug shows the traceback); 3 trained, but the
tracking server is still unreachable and the spool waits for delivery; 1 a bug.""")
    p.add_argument("--list", action="store_true",
                   help="list the workloads and optimizers, then exit")
    p.add_argument("--optimizer", default=defaults.optimizer,
                   help=f"optimizer name, case-insensitive (default {defaults.optimizer}); "
                        f"'{KERAS_ADAM}' is keras.optimizers.Adam, as a control")
    p.add_argument("--learning-rate", type=_positive_float, default=None,
                   help="learning rate (default: the optimizer's own default)")
    p.add_argument("--opt", type=_parse_opt, action="append", default=[], metavar="KEY=VALUE",
                   help="extra optimizer argument, repeatable; VALUE is a Python literal "
                        "(--opt beta_2=0.99 --opt amsgrad=True)")
    p.add_argument("--workload", default=defaults.workload,
                   help=f"dataset + model (default {defaults.workload}); see --list")
    p.add_argument("--epochs", type=_int_at_least(1), default=defaults.epochs,
                   help=f"passes over the training split (default {defaults.epochs})")
    p.add_argument("--batch-size", type=_int_at_least(1), default=defaults.batch_size,
                   help=f"global batch size, split over replicas when mirrored (default "
                        f"{defaults.batch_size})")
    p.add_argument("--seed", type=_int_at_least(0, MAX_SEED), default=defaults.seed,
                   help="seeds weight initialisation and the data order of each epoch "
                        f"(0..{MAX_SEED})")
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
                   help="keep the run's key, model and optimizer state here (default: under the "
                        "store, removed when the run finishes; see below); rerunning the same "
                        "command resumes the same MLflow run from the last epoch")
    p.add_argument("--log-every", type=_int_at_least(0), default=defaults.log_every, metavar="N",
                   help="log the training loss every N steps (0: never; default "
                        f"{defaults.log_every})")
    p.add_argument("--run-name", default=None,
                   help="MLflow run name (default: <optimizer>[-lr<rate>]-seed<seed>)")
    p.add_argument("--log-effective-lr", dest="effective_lr_every", type=_int_at_least(0),
                   nargs="?", const=50, default=defaults.effective_lr_every, metavar="N",
                   help="log each layer's effective learning rates (median, 5th/95th "
                        "percentiles), update/weight norm ratio and zero-step fraction every N "
                        "steps (default N 50 when given without a value), and a histogram per "
                        "epoch (kav.callbacks.AdaptiveLRLogger)")
    p.add_argument("--no-log-model", dest="log_model", action="store_false",
                   help="do not log the trained model")
    p.add_argument("--data-dir", default=None,
                   help="TFDS data dir (default: $TFDS_DATA_DIR, else ~/tensorflow_datasets)")
    p.add_argument("--finish-timeout", type=_seconds, default=defaults.finish_timeout,
                   metavar="SECONDS",
                   help="how long to wait at the end for an unreachable tracking server before "
                        f"exiting 3 with the spool kept (default {defaults.finish_timeout:g})")
    add_debug_flag(p)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["opt"] = dict(args.opt)
    return TrainConfig(**values)


def _print_lists() -> None:
    from . import workloads

    print("workloads: " + ", ".join(workloads.names()))
    print("optimizers: " + ", ".join(optimizer_names()))


@cli_errors
def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    if args.list:
        _print_lists()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = run(config_from_args(args))
    if not result.delivered:
        error(f"the tracking server is unreachable: run {result.run_id} trained, but "
              f"{result.pending} logging operations are spooled in {result.spool_dir}; rerun the "
              "same command, or `python -m experiments.sync`, once the server answers to deliver "
              "them")
        return EXIT_SPOOLED
    print(f"run_id {result.run_id}")
    from . import cli
    from .tracking import resolve_uri

    cli.print_ui_hint(resolve_uri(args.tracking_uri))
    return 0


if __name__ == "__main__":
    sys.exit(main())
