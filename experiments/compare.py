"""Compare optimizers on one workload: the project's main job.

    python -m experiments.compare                      # every optimizer + keras_adam, 3 seeds
    python -m experiments.compare --optimizers adam,amsgrad,sgd --seeds 5 --epochs 30
    python -m experiments.compare --workload mnist_mlp --data-dir /data/tfds
    python -m experiments.compare --workers 1          # one training at a time, in this process

With no arguments it trains the offline default workload (``digits_mlp``: scikit-learn's digits
through TFDS, a 2 x 256 ReLU MLP) with every optimizer of the package at its own default learning
rate (``kav.names()``, so optimizers added later are included) plus Keras' built-in Adam
(``keras_adam``) as a control, over 3 seeds, 10 epochs each, as many trainings at once as the
machine has cores (``--workers``; ``--device gpu``: one per GPU; ``--cluster``: on a Dask
cluster; see :mod:`experiments.parallel`). The values logged do not depend on the engine.

Where a child run's time went (profiled on main with cProfile, 2 quiet cores, digits_mlp, 10
epochs, ~4.6 s a run in one process): ``model.fit`` ~3.1 s, of which tracing the train and test
functions ~1.5-2 s, the 10 epochs ~0.9 s and the effective-learning-rate logger ~1 s (on every
run of the package's optimizers); the per-run ``learning_curve.png`` ~0.6 s; the dataset as an
MLflow input ~0.4 s; the end of the run (waiting for queued metrics) ~0.4 s; TFDS loading and
batching ~0.3 s; model building and compiling ~0.1 s. So: the effective learning rates are
logged only by the runs the parent's plot shows (the first seed of Adam, AMSGrad, RMSprop,
Adagrad); per-run images only with ``--child-plots`` (where the runner can skip them); and the
trainings run in parallel worker processes, each paying TensorFlow's import once.

MLflow layout (experiment ``kav-compare`` unless ``--experiment``): one parent run whose params say
what was compared (workload, optimizers, seeds, epochs, batch size, engine, each optimizer's
learning rate and arguments), whose artifacts are the table (``compare_table.csv`` with numeric
columns, mean and std apart, sorted by ``val_loss_mean``; ``compare_table.md``), the learning
curves (``learning_curves.png``: one line per optimizer, the mean over seeds, a min-max band),
the effective learning rates (``effective_learning_rates.png``, naming the seed shown) and every
run's history (``histories.json``), and whose metrics are a few summary values
(``best_val_loss``, ``best_val_accuracy``, ``runs_finished``, ``runs_failed``,
``study_wall_s``; tag ``best_optimizer``); one nested run per (optimizer, seed) logged by
:func:`experiments.train.run`, with its learning rate as a number.

Speed choices, measured here on a 2-core machine: children run without XLA (``--jit`` turns it
on: compiling costs about 9 s a run and gains nothing on a model this small; an epoch is ~0.1 s
either way) and do not log the trained model (``--log-model``: about 3 s a run).

The machinery (:class:`Arm`, :func:`run_study`, :func:`summarize`) is shared with
``experiments.sweep`` and ``experiments.kingma_ba``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from .report import (  # noqa: E402
    Progress, Table, band_plot, finite_or_inf, fmt_duration, log_figure, log_params, log_series,
    mean_std)

DEFAULT_WORKLOAD = "digits_mlp"
DEFAULT_SEEDS = 3
DEFAULT_EPOCHS = 10
CONTROL = "keras_adam"


@dataclass(frozen=True)
class Arm:
    """One optimizer setting in a study: ``label`` names it in tables, plots and run names."""

    label: str
    optimizer: str
    learning_rate: float | None = None  # None: the optimizer's own default
    opt: dict = field(default_factory=dict, hash=False)


@dataclass
class RunOutcome:
    """One (arm, seed) training of a study: ``status`` is its MLflow run's (FINISHED or FAILED),
    ``error`` one line when it failed (its history is then empty)."""

    arm: Arm
    seed: int
    run_id: str | None
    history: dict
    wall_s: float
    status: str = "FINISHED"
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "FINISHED"

    def final(self, key: str) -> float:
        values = self.history.get(key) or [math.nan]
        return float(values[-1])

    @property
    def epoch_time(self) -> float:
        """Median time of an epoch after the first (the first includes tracing)."""
        times = self.history.get("epoch_time") or [math.nan]
        return float(statistics.median(times[1:] if len(times) > 1 else times))

    @property
    def first_epoch_time(self) -> float:
        return float((self.history.get("epoch_time") or [math.nan])[0])


@dataclass
class StudyResult:
    parent_run_id: str
    experiment_id: str
    outcomes: list[RunOutcome]
    learning_rates: dict[str, float | str]  # label -> resolved learning rate (or schedule)
    wall_s: float
    tracking_uri: str | None = None  # the store (None: MLflow's current tracking URI)

    def client(self):
        import mlflow

        return mlflow.MlflowClient(self.tracking_uri)

    def by_arm(self, failed: bool = False) -> dict[Arm, list[RunOutcome]]:
        """Outcomes by arm, in arm order; without ``failed``, the FINISHED ones only (an arm
        whose every seed failed maps to [])."""
        groups: dict[Arm, list[RunOutcome]] = {}
        for o in self.outcomes:
            groups.setdefault(o.arm, [])
            if failed or o.ok:
                groups[o.arm].append(o)
        return groups

    @property
    def failures(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if not o.ok]


def default_arms() -> list[Arm]:
    """Every optimizer of the package at its defaults, then Keras' Adam as a control."""
    from .config import PACKAGE_OPTIMIZERS

    return [Arm(name, name) for name in PACKAGE_OPTIMIZERS] + [Arm(CONTROL, CONTROL)]


def arms_from_names(names: list[str]) -> list[Arm]:
    """Arms for optimizer names (case-insensitive; ``all`` = :func:`default_arms`), labelled with
    the class name (``amsgrad`` -> ``AMSGrad``)."""
    from .config import optimizer_label

    arms = []
    for name in names:
        if name.lower() == "all":
            arms += default_arms()
            continue
        try:
            label = optimizer_label(name)  # no Keras import: a typo is answered at once
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
        arms.append(Arm(label, label))
    labels = [a.label for a in arms]
    duplicates = sorted({lb for lb in labels if labels.count(lb) > 1})
    if duplicates:
        raise SystemExit(f"error: optimizer(s) listed twice: {', '.join(duplicates)}")
    return arms


def resolved_learning_rate(arm: Arm) -> float | str:
    """The learning rate ``arm`` trains with (its own, or the optimizer's default); a schedule
    (passed as ``opt["learning_rate"]``) is described by its ``repr``."""
    from . import train

    scheduled = not isinstance(arm.opt.get("learning_rate", 0.0), (int, float))
    if arm.learning_rate is None and scheduled:
        return repr(arm.opt["learning_rate"])
    optimizer = train.build_optimizer(arm.optimizer, arm.learning_rate, arm.opt)
    lr = optimizer.get_config()["learning_rate"]
    if not isinstance(lr, (int, float)):
        return repr(lr)
    import numpy as np

    # The optimizer stores a float32: its shortest decimal (0.001, not 0.0010000000474974513).
    return float(str(np.float32(lr)))


def validate(arms: list[Arm], workload: str) -> dict[str, float | str]:
    """Check the workload and every arm's optimizer arguments (``ValueError`` naming the problem);
    return each arm's resolved learning rate."""
    from . import workloads

    workloads.get(workload)
    rates = {}
    for arm in arms:
        try:
            rates[arm.label] = resolved_learning_rate(arm)
        except (ValueError, TypeError) as err:
            raise ValueError(f"optimizer {arm.label!r}: {err}") from None
    return rates


def effective_lr_runs(arms: list[Arm], seeds: list[int]) -> set[tuple[str, int]]:
    """The (arm label, seed) pairs whose effective learning rates the parent's plot shows: the
    first seed of each optimizer of :data:`experiments.effective_lr_plot.DEFAULT_OPTIMIZERS`.
    Only those runs log them (the logger costs about 1 s a run)."""
    from . import effective_lr_plot

    shown, runs = set(), set()
    for arm in arms:
        cls = effective_lr_plot.class_name(arm.optimizer)
        if cls in effective_lr_plot.DEFAULT_OPTIMIZERS and cls not in shown:
            shown.add(cls)
            runs.add((arm.label, min(seeds)))
    return runs


def _train_config_fields() -> set[str]:
    from . import train

    return {f.name for f in dataclasses.fields(train.TrainConfig)}


def make_jobs(arms: list[Arm], seeds: list[int], parent_run_id: str, *, learning_rates: dict,
              effective_lr_every: int = 0, child_plots: bool = False, **config) -> list:
    """One :class:`experiments.parallel.Job` per (arm, seed), in that order. ``config`` holds
    the :class:`experiments.train.TrainConfig` fields common to all (workload, epochs, ...).

    A child trains with the resolved learning rate given explicitly (the same optimizer as its
    default, and the run's ``learning_rate`` param holds the number); effective learning rates
    are logged by the runs the parent's plot shows (:func:`effective_lr_runs`); the per-run
    learning-curve image only with ``child_plots``.
    """
    from . import parallel, train

    fields = _train_config_fields()
    plotted = effective_lr_runs(arms, seeds) if effective_lr_every > 0 else set()
    jobs = []
    for arm in arms:
        lr = arm.learning_rate
        if lr is None and isinstance(learning_rates.get(arm.label), float) \
                and "learning_rate" not in arm.opt:
            lr = learning_rates[arm.label]
        for seed in seeds:
            extra = {"effective_lr_every": effective_lr_every if (arm.label, seed) in plotted
                     else 0,
                     # The parent's plot needs the medians only; per-epoch histogram images
                     # would cost CPU time that Keras' control does not pay.
                     "effective_lr_histograms": False}
            if "log_learning_curve" in fields:
                extra["log_learning_curve"] = child_plots
            cfg = train.TrainConfig(optimizer=arm.optimizer, learning_rate=lr,
                                    opt=dict(arm.opt), seed=seed,
                                    run_name=f"{arm.label}-seed{seed}",
                                    **{k: v for k, v in {**config, **extra}.items() if k in fields})
            jobs.append(parallel.Job(len(jobs), arm.label, seed, cfg, parent_run_id))
    return jobs


def register_dataset(tracking_uri: str, parent_run_id: str, workload: str,
                     data_dir: str | None) -> bool:
    """Log the workload's dataset as an input of the parent run, before parallel children do.

    MLflow's SQL store registers a dataset the first time a run logs it, by a check then an
    insert: two children logging the same new dataset at the same moment fail one of them
    (``UNIQUE constraint failed: datasets.experiment_id, datasets.name, datasets.digest``, seen
    here with 2 workers). Registered once by the parent, the children only link to it. Uses the
    runner's own dataset logging (``train._log_dataset``); the parent stays RUNNING.
    """
    import mlflow

    from . import datasets, train, workloads

    data = datasets.load(workloads.get(workload).dataset, data_dir=data_dir)
    train._log_dataset(mlflow.MlflowClient(tracking_uri), parent_run_id, data)
    return True


def run_study(arms: list[Arm], *, workload: str = DEFAULT_WORKLOAD, seeds=range(DEFAULT_SEEDS),
              epochs: int = DEFAULT_EPOCHS, batch_size: int = 128, tracking_uri: str | None = None,
              experiment: str = "kav-compare", run_name: str | None = None, jit: bool = False,
              log_model: bool = False, data_dir: str | None = None, study: str = "compare",
              params: dict | None = None, progress_stream=None,
              effective_lr_every: int = 0, workers: int = 1, device: str = "cpu",
              cluster: str | None = None, child_plots: bool = False) -> StudyResult:
    """Train every arm with every seed as nested runs under a new parent run.

    Every configuration is checked (:func:`validate`) before the first run starts: a bad
    optimizer argument fails at once, not after an hour. The trainings run one at a time here
    (``workers=1``), in ``workers`` local processes, or on the Dask cluster at ``cluster``
    (:mod:`experiments.parallel`); the outcomes are in (arm, seed) order either way. A training
    that fails is an outcome with ``status="FAILED"`` and the others go on. The caller logs the
    summary (see :func:`log_summary`) and ends the parent (:func:`finish`). On Ctrl-C every
    started child and the parent are marked KILLED and
    :class:`experiments.parallel.StudyInterrupted` (a ``KeyboardInterrupt``) propagates.
    """
    import mlflow

    from . import parallel, tracking

    seeds = list(seeds)
    if not arms or not seeds:
        raise ValueError("a study needs at least one optimizer and one seed")
    learning_rates = validate(arms, workload)
    uri = tracking.resolve_uri(tracking_uri)
    parallel.check_engine(workers, device, cluster, uri)

    # Local workers start now: their interpreter and TensorFlow load while the store opens.
    started = parallel.prestart(workers, device, len(arms) * len(seeds), cluster)
    try:
        experiment_id = tracking.setup(uri, experiment)
        client = mlflow.MlflowClient(uri)
        parent = client.create_run(experiment_id, run_name=run_name or f"{study}-{workload}",
                                   tags={**tracking.version_tags(), "kav.study": study,
                                         "workload": workload})
        parent_id = parent.info.run_id
        jobs = make_jobs(arms, seeds, parent_id, learning_rates=learning_rates,
                         effective_lr_every=effective_lr_every, child_plots=child_plots,
                         workload=workload, epochs=epochs, batch_size=batch_size, jit=jit,
                         tracking_uri=uri, experiment=experiment, log_model=log_model,
                         data_dir=data_dir, device=device)
        engine = (f"dask:{cluster}" if cluster else
                  "in-process" if workers <= 1 or len(jobs) == 1 else f"{min(workers, len(jobs))} "
                  "local processes")
        all_params = {
            "study": study, "workload": workload, "optimizers": ",".join(a.label for a in arms),
            "seeds": ",".join(map(str, seeds)), "epochs": epochs, "batch_size": batch_size,
            "jit": jit, "log_model": log_model, "runs": len(jobs), "device": device,
            "engine": engine,
        }
        for arm in arms:
            all_params[f"lr.{arm.label}"] = learning_rates[arm.label]
            if arm.optimizer != arm.label or arm.opt:
                all_params[f"optimizer.{arm.label}"] = arm.optimizer + (
                    " " + json.dumps(arm.opt, sort_keys=True, default=repr) if arm.opt else "")
        all_params.update(params or {})
        log_params(client, parent_id, all_params)

        if cluster or (workers > 1 and len(jobs) > 1):
            register_dataset(uri, parent_id, workload, data_dir)
    except BaseException:
        parallel.discard(started)
        raise
    progress = Progress(len(jobs), stream=progress_stream)
    by_index = {job.index: job for job in jobs}

    def report(r) -> None:
        job = by_index[r.index]
        if r.status == "FINISHED":
            h = r.history
            what = (f"val_loss {h.get('val_loss', [math.nan])[-1]:.4f}, val_accuracy "
                    f"{h.get('val_accuracy', [math.nan])[-1]:.4f} ({r.wall_s:.1f} s)")
        else:
            what = f"{r.status}: {r.error}"
        progress.step(f"{job.label} seed {job.seed}: {what}")

    arm_of = {a.label: a for a in arms}
    start = time.monotonic()
    try:
        results = parallel.run_jobs(jobs, workers=workers, device=device, cluster=cluster,
                                    on_result=report, pool=started)
    except KeyboardInterrupt:
        parallel.mark_killed(uri, experiment_id, parent_id)
        raise
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    outcomes = [RunOutcome(arm_of[j.label], j.seed, r.run_id, r.history, r.wall_s, r.status,
                           r.error) for j, r in zip(jobs, results)]
    for r in results:  # which machine and process trained it
        if r.run_id and r.worker:
            client.set_tag(r.run_id, "kav.worker", r.worker)
    return StudyResult(parent_id, experiment_id, outcomes, learning_rates,
                       time.monotonic() - start, uri)


# ---- summary ------------------------------------------------------------------------------------

MAIN_METRIC = "val_loss"  # tables are sorted by its mean, lowest first
COLUMNS = ["optimizer", "learning_rate", "val_loss_mean", "val_loss_std", "val_accuracy_mean",
           "val_accuracy_std", "train_loss_mean", "train_loss_std", "s_per_epoch",
           "first_epoch_s", "seeds", "failed"]


def _sort_key(row: dict) -> tuple:
    return (finite_or_inf(row.get(f"{MAIN_METRIC}_mean", math.nan)), str(row["optimizer"]))


def summarize(result: StudyResult) -> Table:
    """One row per arm, sorted by mean final validation loss (lowest first; diverged or failed
    arms last): the mean and population std over the finished seeds of the final validation
    loss, validation accuracy and training loss (numbers, NaN when a seed diverged), the mean
    of each run's median seconds per epoch after the first and of its first epoch's seconds,
    the number of finished seeds and of failed ones."""
    rows = []
    for arm, runs in result.by_arm(failed=True).items():
        done = [o for o in runs if o.ok]
        row = {"optimizer": arm.label, "learning_rate": result.learning_rates[arm.label],
               "seeds": len(done), "failed": len(runs) - len(done)}
        for key, name in (("val_loss", "val_loss"), ("val_accuracy", "val_accuracy"),
                          ("loss", "train_loss")):
            mean, std = mean_std(o.final(key) for o in done)
            row[f"{name}_mean"], row[f"{name}_std"] = round_or_nan(mean), round_or_nan(std)
        row["s_per_epoch"] = round_or_nan(mean_std(o.epoch_time for o in done)[0], 4)
        row["first_epoch_s"] = round_or_nan(mean_std(o.first_epoch_time for o in done)[0], 2)
        rows.append(row)
    return Table(COLUMNS, sorted(rows, key=_sort_key))


def round_or_nan(x: float, digits: int = 6) -> float:
    return x if not math.isfinite(x) else round(x, digits)


def display_table(table: Table) -> Table:
    """``table`` for reading: each ``<key>_mean`` / ``<key>_std`` pair as one ``mean ± std``
    column (4 decimals), ``failed`` only when a run failed."""
    columns = []
    for c in table.columns:
        if c.endswith("_std") or (c == "failed" and not any(r.get("failed") for r in table.rows)):
            continue
        columns.append(c[:-len("_mean")] if c.endswith("_mean") else c)
    rows = []
    for r in table.rows:
        row = dict(r)
        for c in table.columns:
            if c.endswith("_mean"):
                key = c[:-len("_mean")]
                mean, std = r.get(c, math.nan), r.get(f"{key}_std", math.nan)
                row[key] = ("failed" if r.get("seeds") == 0 else "nan (diverged)"
                            if not math.isfinite(mean) else f"{mean:.4f}" if r.get("seeds") == 1
                            else f"{mean:.4f} ± {std:.4f}")
        rows.append(row)
    return Table(columns, rows)


def summary_metrics(result: StudyResult, table: Table) -> dict[str, float]:
    """The parent's few metrics: the best arm's (first row of ``table``) mean final
    ``best_val_loss`` and ``best_val_accuracy``, ``runs_finished`` and ``runs_failed``."""
    metrics = {"runs_finished": float(sum(o.ok for o in result.outcomes)),
               "runs_failed": float(len(result.failures))}
    if table.rows:
        best = table.rows[0]
        metrics["best_val_loss"] = best["val_loss_mean"]
        metrics["best_val_accuracy"] = best["val_accuracy_mean"]
    return metrics


def curves_figure(result: StudyResult, title: str):
    curves = {arm.label: [o.history for o in runs] for arm, runs in result.by_arm().items()
              if runs}
    return band_plot(curves, [("val_loss", "validation loss"), ("val_accuracy",
                                                                 "validation accuracy"),
                              ("loss", "training loss")],
                     title=title, logy=("val_loss", "loss"))


def log_summary(result: StudyResult, table: Table, title: str, name: str = "compare_table") -> None:
    """Log ``table`` (CSV with numeric columns + markdown), the learning curves, the effective
    learning rates, the histories, the failures and a few summary metrics to the parent run;
    tag it with the best arm (``best_optimizer``)."""
    client = result.client()
    pid = result.parent_run_id
    table.log(client, pid, name)
    if any(result.by_arm().values()):
        log_figure(client, pid, curves_figure(result, title), "learning_curves.png")
    from . import effective_lr_plot  # runs logged with effective_lr_every > 0

    effective_lr_plot.log_plot(client, pid, [o for o in result.outcomes if o.ok])
    histories = [{"optimizer": o.arm.label, "optimizer_name": o.arm.optimizer,
                  "learning_rate": result.learning_rates[o.arm.label], "opt": o.arm.opt,
                  "seed": o.seed, "run_id": o.run_id, "status": o.status, "error": o.error,
                  "wall_s": o.wall_s, "history": o.history}
                 for o in result.outcomes]
    client.log_text(pid, json.dumps(histories, indent=1, default=repr), "histories.json")
    metrics = summary_metrics(result, table)
    metrics["study_wall_s"] = result.wall_s
    log_series(client, pid, {k: ([0], [v]) for k, v in metrics.items()})
    if table.rows and math.isfinite(finite_or_inf(table.rows[0][f"{MAIN_METRIC}_mean"])):
        client.set_tag(pid, "best_optimizer", table.rows[0]["optimizer"])


def finish(result: StudyResult, status: str | None = None) -> str:
    """End the study's parent run: ``status``, else FAILED when a child failed, else FINISHED.
    Returns the status set."""
    if status is None:
        status = "FAILED" if result.failures else "FINISHED"
    result.client().set_terminated(result.parent_run_id, status)
    return status


# ---- command line -------------------------------------------------------------------------------

def parse_seeds(text: str) -> list[int]:
    """``"3"`` -> [0, 1, 2]; ``"0,5,7"`` -> [0, 5, 7] (a comma makes it a list: ``"4,"`` = [4])."""
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            n = int(text)
            if n < 1:
                raise ValueError
            seeds = list(range(n))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds expects a count (3 = seeds 0,1,2) or a comma list of seeds, not {text!r}"
        ) from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds: empty or repeated seeds in {text!r}")
    return seeds


def workers_count(text: str) -> int:
    try:
        n = int(text)
        if n < 1:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--workers expects an integer >= 1, not {text!r}") from None
    return n


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """``--workers``, ``--device``, ``--cluster``: where a study's trainings run (shared by
    compare, sweep and kingma_ba; see :mod:`experiments.parallel`)."""
    p.add_argument("--workers", type=workers_count, default=None, metavar="N",
                   help="trainings at once, each in its own process (default: the core count, "
                        "or the GPU count with --device gpu; 1: one after the other in this "
                        "process)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="train on the CPU (default) or on GPUs, one GPU per worker")
    p.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="run the trainings on a Dask cluster (tcp://HOST:8786; default "
                        "$DASK_SCHEDULER_ADDRESS when set); needs --tracking-uri of a server "
                        "every worker reaches, and pip install 'keras-adam-variants[cluster]'")


def engine_settings(args) -> dict:
    """``workers``, ``device`` and ``cluster`` from parsed ``args`` (defaults resolved)."""
    from . import parallel

    cluster = args.cluster or os.environ.get(parallel.CLUSTER_ENV) or None
    workers = args.workers or parallel.default_workers(args.device)
    return {"workers": workers, "device": args.device, "cluster": cluster}


def add_common_arguments(p: argparse.ArgumentParser, experiment: str, epochs: int) -> None:
    """Arguments shared by compare and kingma_ba."""
    p.add_argument("--seeds", type=parse_seeds, default=list(range(DEFAULT_SEEDS)),
                   help=f"a count N (seeds 0..N-1) or a comma list (default {DEFAULT_SEEDS})")
    p.add_argument("--epochs", type=int, default=epochs, help=f"epochs per run (default {epochs})")
    p.add_argument("--batch-size", type=int, default=128, help="default 128, as Kingma & Ba")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                        "sqlite:///<cwd>/mlruns/mlflow.db)")
    p.add_argument("--experiment", default=experiment,
                   help=f"MLflow experiment (default {experiment})")
    p.add_argument("--run-name", default=None, help="name of the parent run")
    p.add_argument("--jit", action=argparse.BooleanOptionalAction, default=False,
                   help="XLA-compile each run's train step (default: off, see the module doc)")
    p.add_argument("--log-model", action="store_true",
                   help="log each trained model to its run (default: no model is logged; "
                        "about 3 s a run)")
    p.add_argument("--child-plots", action="store_true",
                   help="draw each run's own learning curve (learning_curve.png; default: only "
                        "the parent's plots)")
    p.add_argument("--data-dir", default=None,
                   help="TFDS data dir (default: $TFDS_DATA_DIR, else ~/tensorflow_datasets)")
    p.add_argument("--log-effective-lr", dest="effective_lr_every", type=int, metavar="N",
                   default=10,
                   help="plot the effective learning rates of Adam, AMSGrad, RMSprop and Adagrad "
                        "on the parent run (effective_learning_rates.png), logged every N steps "
                        "by the first seed's run of each; 0: off (default 10)")
    add_engine_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.compare",
        description="Train one workload with several optimizers over several seeds, as nested "
                    "MLflow runs under one parent; print and log a summary table and learning "
                    "curves.")
    p.add_argument("--workload", default=DEFAULT_WORKLOAD,
                   help=f"workload name (default {DEFAULT_WORKLOAD}); see experiments.workloads")
    p.add_argument("--optimizers", default="all",
                   help="comma list of optimizer names (case-insensitive), or 'all' (default): "
                        "every optimizer of keras_adam_variants, then keras_adam")
    add_common_arguments(p, "kav-compare", DEFAULT_EPOCHS)
    return p


def print_failures(result: StudyResult, stream=None) -> None:
    for o in result.failures:
        print(f"FAILED {o.arm.label} seed {o.seed} (run {o.run_id}): {o.error}",
              file=stream or sys.stdout)


def run_and_report(arms: list[Arm], args, *, study: str, title: str, params: dict | None = None,
                   workload: str) -> tuple[StudyResult, Table]:
    """Run ``arms`` per ``args`` (the common arguments), print and log the summary. Raises
    ``SystemExit("error: ...")`` on bad input and :class:`KeyboardInterrupt` when stopped."""
    if args.epochs < 1 or args.batch_size < 1:
        raise SystemExit("error: --epochs and --batch-size must be at least 1")
    engine = engine_settings(args)
    from . import datasets, parallel, tracking

    try:
        parallel.check_engine(engine["workers"], engine["device"], engine["cluster"],
                              tracking.resolve_uri(args.tracking_uri))
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    print(f"{title}: {len(arms)} optimizers x {len(args.seeds)} seeds = "
          f"{len(arms) * len(args.seeds)} runs of {args.epochs} epochs", file=sys.stderr,
          flush=True)
    try:
        validate(arms, workload)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    try:
        result = run_study(arms, workload=workload, seeds=args.seeds, epochs=args.epochs,
                           batch_size=args.batch_size, tracking_uri=args.tracking_uri,
                           experiment=args.experiment, run_name=args.run_name, jit=args.jit,
                           log_model=args.log_model, data_dir=args.data_dir, study=study,
                           params=params, effective_lr_every=args.effective_lr_every,
                           child_plots=args.child_plots, **engine)
    except (ValueError, datasets.DatasetNotPreparedError,
            tracking.TrackingUnavailableError) as err:
        raise SystemExit(f"error: {err}") from None
    status = "FAILED"
    try:
        table = summarize(result)
        log_summary(result, table, title)
        status = None
    finally:
        status = finish(result, status)
    print(f"\n{title}: final values after {args.epochs} epochs, mean ± std over seeds "
          f"{','.join(map(str, args.seeds))}, sorted by {MAIN_METRIC}")
    print(display_table(table).to_text())
    print_failures(result)
    print(f"{len(result.outcomes)} runs in {fmt_duration(result.wall_s)}; MLflow experiment "
          f"{args.experiment!r}, parent run {result.parent_run_id} ({status})")
    return result, table


def exit_status(call, argv) -> int:
    """Run ``call(argv)`` as a command: 0 when every run finished, 1 when one failed, 2 with one
    ``error:`` line on bad input or environment, 130 on Ctrl-C (runs marked KILLED)."""
    try:
        result = call(argv)
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            print(exit_.code if exit_.code.startswith("error:") else f"error: {exit_.code}",
                  file=sys.stderr)
            return 2
        return exit_.code or 0
    except KeyboardInterrupt:
        print("interrupted: every started run is marked KILLED", file=sys.stderr)
        return 130
    if isinstance(result, tuple):
        result = result[0]
    return 1 if result is not None and getattr(result, "failures", None) else 0


def run_cli(argv=None) -> StudyResult:
    """The command line's study: parse ``argv``, run, report; returns the :class:`StudyResult`
    (raises ``SystemExit("error: ...")`` on bad input)."""
    args = build_parser().parse_args(argv)
    from . import workloads

    try:
        workloads.get(args.workload)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    arms = arms_from_names([n.strip() for n in args.optimizers.split(",") if n.strip()])
    if not arms:
        raise SystemExit("error: --optimizers is empty")
    result, _ = run_and_report(arms, args, study="compare", workload=args.workload,
                               title=f"compare on {args.workload}")
    return result


def main(argv=None) -> int:
    """``python -m experiments.compare``; returns the exit status (see :func:`exit_status`)
    after printing the command that opens the MLflow UI on the store."""
    from . import cli

    status = exit_status(run_cli, argv)
    cli.print_ui_hint_after(argv, status)
    return status


if __name__ == "__main__":
    sys.exit(main())
