"""What defines one training run: :class:`TrainConfig`, its result :class:`TrainResult`, and
:class:`ConfigError` for a configuration that cannot work. No heavy imports."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field

from .errors import UserError

MAX_SEED = 2**32 - 1  # NumPy's and keras.utils.set_random_seed's limit
# Metrics logged once per epoch, at step = epoch counting from 0 (mlflow.keras.autolog's names and
# step; "learning_rate" is kav.callbacks.LEARNING_RATE_METRIC, "epoch_time" EPOCH_TIME_METRIC).
EPOCH_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_time",
              "examples_per_second")
STEP_KEY = "train_loss_step"  # logged every log_every steps (step = global step, 1 = first batch)


class ConfigError(UserError, ValueError):
    """A run's configuration cannot work (bad name, value, device, or checkpoint mismatch)."""


# The package's optimizers (``keras_adam_variants.names()``, checked equal by the tests) and Keras'
# own Adam as a control: written out so that a bad name is answered without importing Keras.
PACKAGE_OPTIMIZERS = ("AMSGrad", "AdaBelief", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax",
                      "LazyAdam", "Nadam", "RAdam", "RMSprop", "SGD", "Yogi")
KERAS_ADAM = "keras_adam"  # Keras' own keras.optimizers.Adam, as a control


def _normal(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")  # as keras_adam_variants.get


def optimizer_label(name: str) -> str:
    """The canonical name of optimizer ``name`` (case-insensitive, ``_``/``-`` ignored):
    ``"amsgrad"`` -> ``"AMSGrad"``, ``"keras-adam"`` -> ``"keras_adam"``.

    Raises :class:`ConfigError` naming the known optimizers (no import: fast)."""
    known = {_normal(n): n for n in (*PACKAGE_OPTIMIZERS, KERAS_ADAM)}
    if isinstance(name, str) and _normal(name) in known:
        return known[_normal(name)]
    import difflib

    close = difflib.get_close_matches(name.lower() if isinstance(name, str) else "",
                                      [n.lower() for n in known.values()], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown optimizer {name!r}{hint}: expected one of "
                      f"{', '.join((*PACKAGE_OPTIMIZERS, KERAS_ADAM))} (case-insensitive)")


@dataclass
class TrainConfig:
    """Everything that defines one run. ``learning_rate=None`` keeps the optimizer's default;
    ``opt`` holds extra optimizer constructor arguments (``{"beta_2": 0.99}``).

    ``checkpoint_dir=None`` keeps checkpoints in a directory of the store
    (:func:`experiments.checkpoints.default_dir`), removed once the run has finished.
    """

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
    finish_timeout: float = 120.0  # seconds to wait at the end for an unreachable tracking server
    log_learning_curve: bool = True  # draw learning_curve.png into the run (~0.5 s of CPU a run)


@dataclass
class TrainResult:
    """``history`` holds one value per epoch for each of ``loss``, ``accuracy``, ``val_loss``,
    ``val_accuracy``, ``learning_rate``, ``epoch_time`` (and ``examples_per_second``), over the
    whole run (resumed runs included); ``history[key][e]`` is the metric at MLflow step ``e``. ``delivered`` is False when the tracking server was unreachable at
    the end: what the run logged is kept in ``spool_dir`` (``pending`` operations) for a rerun
    or ``python -m experiments.sync``."""

    run_id: str
    history: dict[str, list[float]]
    epoch_times: list[float]
    delivered: bool = True
    pending: int = 0
    spool_dir: str | None = None


def validate(config: TrainConfig) -> None:
    """Raise :class:`ConfigError` for values no run can use (cheap: no imports, no I/O)."""
    def need(ok, message):
        if not ok:
            raise ConfigError(message)

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    need(is_int(config.epochs) and config.epochs >= 1,
         f"--epochs must be an integer >= 1, got {config.epochs!r}")
    need(is_int(config.batch_size) and config.batch_size >= 1,
         f"--batch-size must be an integer >= 1, got {config.batch_size!r}")
    need(is_int(config.seed) and 0 <= config.seed <= MAX_SEED,
         f"--seed must be an integer in [0, {MAX_SEED}], got {config.seed!r}")
    need(is_int(config.log_every) and config.log_every >= 0,
         f"--log-every must be an integer >= 0 (0: off), got {config.log_every!r}")
    need(is_int(config.effective_lr_every) and config.effective_lr_every >= 0,
         f"--log-effective-lr must be an integer >= 0 (0: off), got {config.effective_lr_every!r}")
    lr = config.learning_rate
    need(lr is None or (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0),
         f"--learning-rate must be a finite number > 0, got {lr!r}")
    need(config.device in ("cpu", "gpu"), f"--device must be cpu or gpu, not {config.device!r}")
    need(config.strategy in ("none", "mirrored"),
         f"--strategy must be none or mirrored, not {config.strategy!r}")
    need(isinstance(config.finish_timeout, (int, float)) and config.finish_timeout >= 0,
         f"--finish-timeout must be a number of seconds >= 0, got {config.finish_timeout!r}")
    need(isinstance(config.opt, dict), f"opt must be a dict of optimizer arguments, got "
                                       f"{type(config.opt).__name__}")
    need(isinstance(config.experiment, str) and config.experiment.strip() != "",
         "--experiment must be a non-empty name")
    optimizer_label(config.optimizer)


def jsonable(value):
    """``value`` as plain JSON data (anything else by ``repr``)."""
    return json.loads(json.dumps(value, default=repr))


LOGGING_ONLY = ("checkpoint_dir", "run_name", "log_model", "effective_lr_every",
                "effective_lr_histograms", "finish_timeout", "log_learning_curve")


def identity(config: TrainConfig, tracking_uri: str, parent_run_id: str | None = None) -> dict:
    """The settings a checkpoint must share with the command that resumes it (the run's
    identity): every field but the logging-only ones, the resolved store and the parent run."""
    ident = dataclasses.asdict(config)
    for key in LOGGING_ONLY:
        ident.pop(key)
    ident["tracking_uri"] = tracking_uri
    if parent_run_id is not None:
        ident["parent_run_id"] = parent_run_id
    return jsonable(ident)


def identity_hash(ident: dict) -> str:
    """A short stable hash of :func:`identity` (16 hex digits)."""
    text = json.dumps(ident, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
