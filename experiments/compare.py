"""Compare optimizers on one workload: the project's main job.

    python -m experiments.compare                      # every optimizer + keras_adam, 3 seeds
    python -m experiments.compare --optimizers adam,amsgrad,sgd --seeds 5 --epochs 30
    python -m experiments.compare --workload mnist_mlp --data-dir /data/tfds

With no arguments it trains the offline default workload (``digits_mlp``: scikit-learn's digits
through TFDS, a 2 x 256 ReLU MLP) with every optimizer of the package at its own default learning
rate (``kav.names()``, so optimizers added later are included) plus Keras' built-in Adam
(``keras_adam``) as a control, over 3 seeds, 10 epochs each. Each run costs about 5 s of CPU
(~1.3 s first epoch with tracing, ~0.1 s per further epoch, the rest MLflow and the runner's
per-run artifacts): with 7 optimizers (24 runs) about 2 minutes on 2 idle cores; with 13 (42 runs)
4m09s for the runs (4m30s wall with TFDS preparation) on a quiet 2-core machine, 7m29s
wall on one loaded about 3x by other work.

MLflow layout (experiment ``kav-compare`` unless ``--experiment``): one parent run whose params say
what was compared (workload, optimizers, seeds, epochs, batch size, each optimizer's learning rate
and arguments) and whose artifacts are the table (``compare_table.csv``, ``compare_table.md``),
the learning curves (``learning_curves.png``: one line per optimizer, the mean over seeds, a
min-max band) and every run's history (``histories.json``); one nested run per (optimizer, seed)
logged by :func:`experiments.train.run`. The parent also gets the summary as metrics
(``<optimizer>.val_loss_mean`` ...), so runs can be searched and charted in the UI.

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

from experiments.report import (  # noqa: E402
    Progress, Table, band_plot, fmt_duration, fmt_mean_std, log_figure, log_params, log_series,
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
    arm: Arm
    seed: int
    run_id: str
    history: dict
    wall_s: float

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

    def by_arm(self) -> dict[Arm, list[RunOutcome]]:
        groups: dict[Arm, list[RunOutcome]] = {}
        for o in self.outcomes:
            groups.setdefault(o.arm, []).append(o)
        return groups


def default_arms() -> list[Arm]:
    """Every optimizer of the package at its defaults, then Keras' Adam as a control."""
    import keras_adam_variants as kav

    return [Arm(name, name) for name in kav.names()] + [Arm(CONTROL, CONTROL)]


def arms_from_names(names: list[str]) -> list[Arm]:
    """Arms for optimizer names (case-insensitive; ``all`` = :func:`default_arms`), labelled with
    the class name (``amsgrad`` -> ``AMSGrad``)."""
    from experiments import train

    arms = []
    for name in names:
        if name.lower() == "all":
            arms += default_arms()
            continue
        try:
            cls = train.optimizer_class(name)
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
        label = CONTROL if name.lower().replace("-", "_") == CONTROL else cls.__name__
        arms.append(Arm(label, label if label != CONTROL else CONTROL))
    labels = [a.label for a in arms]
    duplicates = sorted({lb for lb in labels if labels.count(lb) > 1})
    if duplicates:
        raise SystemExit(f"error: optimizer(s) listed twice: {', '.join(duplicates)}")
    return arms


def resolved_learning_rate(arm: Arm) -> float | str:
    """The learning rate ``arm`` trains with (its own, or the optimizer's default); a schedule
    (passed as ``opt["learning_rate"]``) is described by its ``repr``."""
    from experiments import train

    scheduled = not isinstance(arm.opt.get("learning_rate", 0.0), (int, float))
    if arm.learning_rate is None and scheduled:
        return repr(arm.opt["learning_rate"])
    optimizer = train.build_optimizer(arm.optimizer, arm.learning_rate, arm.opt)
    lr = optimizer.get_config()["learning_rate"]
    return float(lr) if isinstance(lr, (int, float)) else repr(lr)


def validate(arms: list[Arm], workload: str) -> dict[str, float | str]:
    """Check the workload and every arm's optimizer arguments (``ValueError`` naming the problem);
    return each arm's resolved learning rate."""
    from experiments import workloads

    workloads.get(workload)
    rates = {}
    for arm in arms:
        try:
            rates[arm.label] = resolved_learning_rate(arm)
        except (ValueError, TypeError) as err:
            raise ValueError(f"optimizer {arm.label!r}: {err}") from None
    return rates


def run_study(arms: list[Arm], *, workload: str = DEFAULT_WORKLOAD, seeds=range(DEFAULT_SEEDS),
              epochs: int = DEFAULT_EPOCHS, batch_size: int = 128, tracking_uri: str | None = None,
              experiment: str = "kav-compare", run_name: str | None = None, jit: bool = False,
              log_model: bool = False, data_dir: str | None = None, study: str = "compare",
              params: dict | None = None, progress_stream=None,
              effective_lr_every: int = 0) -> StudyResult:
    """Train every arm with every seed as nested runs under a new parent run.

    Every configuration is checked (:func:`validate`) before the first run starts: a bad
    optimizer argument fails at once, not after an hour. The parent run is FINISHED when all
    children are, FAILED if one
    raised (the exception propagates). Returns the outcomes; the caller logs its own summary to
    ``result.parent_run_id`` (see :func:`log_summary`).
    """
    import mlflow

    from experiments import tracking, train

    seeds = list(seeds)
    if not arms or not seeds:
        raise ValueError("a study needs at least one optimizer and one seed")
    configs = []
    for arm in arms:
        for seed in seeds:
            config = train.TrainConfig(
                optimizer=arm.optimizer, learning_rate=arm.learning_rate, opt=dict(arm.opt),
                workload=workload, epochs=epochs, batch_size=batch_size, seed=seed, jit=jit,
                tracking_uri=tracking_uri, experiment=experiment, log_model=log_model,
                run_name=f"{arm.label}-seed{seed}", data_dir=data_dir,
                effective_lr_every=effective_lr_every,
                # The parent's plot needs the medians only; per-epoch histogram images would
                # cost the package's optimizers CPU time that Keras' control does not pay.
                effective_lr_histograms=False)
            configs.append((arm, seed, config))
    learning_rates = validate(arms, workload)

    experiment_id = tracking.setup(tracking_uri, experiment)
    client = mlflow.MlflowClient()
    parent = client.create_run(experiment_id, run_name=run_name or f"{study}-{workload}",
                               tags={**tracking.version_tags(), "kav.study": study,
                                     "workload": workload})
    parent_id = parent.info.run_id
    all_params = {
        "study": study, "workload": workload, "optimizers": ",".join(a.label for a in arms),
        "seeds": ",".join(map(str, seeds)), "epochs": epochs, "batch_size": batch_size,
        "jit": jit, "log_model": log_model, "runs": len(configs),
    }
    for arm in arms:
        all_params[f"lr.{arm.label}"] = learning_rates[arm.label]
        if arm.optimizer != arm.label or arm.opt:
            all_params[f"optimizer.{arm.label}"] = arm.optimizer + (
                " " + json.dumps(arm.opt, sort_keys=True, default=repr) if arm.opt else "")
    all_params.update(params or {})
    log_params(client, parent_id, all_params)

    progress = Progress(len(configs), stream=progress_stream)
    outcomes = []
    status = "FAILED"
    start = time.monotonic()
    try:
        for arm, seed, config in configs:
            t0 = time.monotonic()
            result = train.run(config, parent_run_id=parent_id)
            outcome = RunOutcome(arm, seed, result.run_id, result.history, time.monotonic() - t0)
            outcomes.append(outcome)
            progress.step(f"{arm.label} seed {seed}: val_loss {outcome.final('val_loss'):.4f}, "
                          f"val_accuracy {outcome.final('val_accuracy'):.4f} "
                          f"({outcome.wall_s:.1f} s)")
        status = "FINISHED"
    finally:
        if status != "FINISHED":
            client.set_terminated(parent_id, status)
    return StudyResult(parent_id, experiment_id, outcomes, learning_rates,
                       time.monotonic() - start)


def finish(result: StudyResult, status: str = "FINISHED") -> None:
    """Mark the study's parent run ``status``."""
    import mlflow

    mlflow.MlflowClient().set_terminated(result.parent_run_id, status)


# ---- summary ------------------------------------------------------------------------------------

COLUMNS = ["optimizer", "learning_rate", "val_loss", "val_accuracy", "train_loss",
           "s/epoch", "first epoch s", "seeds"]


def summarize(result: StudyResult) -> Table:
    """One row per arm: final validation loss and accuracy and training loss (mean ± std over
    seeds), median seconds per epoch after the first, seconds of the first epoch."""
    table = Table(COLUMNS)
    for arm, runs in result.by_arm().items():
        table.add(optimizer=arm.label, learning_rate=result.learning_rates[arm.label],
                  val_loss=fmt_mean_std(o.final("val_loss") for o in runs),
                  val_accuracy=fmt_mean_std(o.final("val_accuracy") for o in runs),
                  train_loss=fmt_mean_std(o.final("loss") for o in runs),
                  **{"s/epoch": round(statistics.mean(o.epoch_time for o in runs), 4),
                     "first epoch s": round(statistics.mean(o.first_epoch_time for o in runs), 2),
                     "seeds": len(runs)})
    return table


def summary_metrics(result: StudyResult) -> dict[str, float]:
    """``<label>.<key>_mean`` / ``_std`` of the final values, for the parent run's metrics."""
    metrics = {}
    for arm, runs in result.by_arm().items():
        for key in ("val_loss", "val_accuracy", "loss"):
            mean, std = mean_std(o.final(key) for o in runs)
            metrics[f"{arm.label}.{key}_mean"] = mean
            metrics[f"{arm.label}.{key}_std"] = std
        metrics[f"{arm.label}.epoch_time"] = statistics.mean(o.epoch_time for o in runs)
    return metrics


def curves_figure(result: StudyResult, title: str):
    curves = {arm.label: [o.history for o in runs] for arm, runs in result.by_arm().items()}
    return band_plot(curves, [("val_loss", "validation loss"), ("val_accuracy",
                                                                 "validation accuracy"),
                              ("loss", "training loss")],
                     title=title, logy=("val_loss", "loss"))


def log_summary(result: StudyResult, table: Table, title: str, name: str = "compare_table") -> None:
    """Log ``table`` (CSV + markdown), the learning curves, the histories and summary metrics to
    the parent run."""
    import mlflow

    client = mlflow.MlflowClient()
    pid = result.parent_run_id
    table.log(client, pid, name)
    log_figure(client, pid, curves_figure(result, title), "learning_curves.png")
    from experiments import effective_lr_plot  # runs logged with effective_lr_every > 0

    effective_lr_plot.log_plot(client, pid, result.outcomes)
    histories = [{"optimizer": o.arm.label, "optimizer_name": o.arm.optimizer,
                  "learning_rate": result.learning_rates[o.arm.label], "opt": o.arm.opt,
                  "seed": o.seed, "run_id": o.run_id, "wall_s": o.wall_s, "history": o.history}
                 for o in result.outcomes]
    client.log_text(pid, json.dumps(histories, indent=1, default=repr), "histories.json")
    metrics = summary_metrics(result)
    log_series(client, pid, {k: ([0], [v]) for k, v in metrics.items()})
    log_series(client, pid, {"study_wall_s": ([0], [result.wall_s])})


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
                   help="log each trained model to its run (about 3 s a run)")
    p.add_argument("--data-dir", default=None,
                   help="TFDS data dir (default: $TFDS_DATA_DIR, else ~/tensorflow_datasets)")
    p.add_argument("--log-effective-lr", dest="effective_lr_every", type=int, metavar="N",
                   default=10,
                   help="log each run's effective learning rates every N steps and plot Adam's, "
                        "AMSGrad's, RMSprop's and Adagrad's on the parent run "
                        "(effective_learning_rates.png); 0: off (default 10)")


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


def run_and_report(arms: list[Arm], args, *, study: str, title: str, params: dict | None = None,
                   workload: str) -> tuple[StudyResult, Table]:
    """Run ``arms`` per ``args`` (the common arguments), print and log the summary."""
    if args.epochs < 1 or args.batch_size < 1:
        raise SystemExit("error: --epochs and --batch-size must be at least 1")
    print(f"{title}: {len(arms)} optimizers x {len(args.seeds)} seeds = "
          f"{len(arms) * len(args.seeds)} runs of {args.epochs} epochs", file=sys.stderr,
          flush=True)
    from experiments import datasets, tracking

    try:
        validate(arms, workload)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    try:
        result = run_study(arms, workload=workload, seeds=args.seeds, epochs=args.epochs,
                           batch_size=args.batch_size, tracking_uri=args.tracking_uri,
                           experiment=args.experiment, run_name=args.run_name, jit=args.jit,
                           log_model=args.log_model, data_dir=args.data_dir, study=study,
                           params=params, effective_lr_every=args.effective_lr_every)
    except (datasets.DatasetNotPreparedError, tracking.TrackingUnavailableError) as err:
        raise SystemExit(f"error: {err}") from None
    status = "FAILED"
    try:
        table = summarize(result)
        log_summary(result, table, title)
        status = "FINISHED"
    finally:
        finish(result, status)
    print(f"\n{title}: final values after {args.epochs} epochs, mean ± std over seeds "
          f"{','.join(map(str, args.seeds))}")
    print(table.to_text())
    print(f"{len(result.outcomes)} runs in {fmt_duration(result.wall_s)}; MLflow experiment "
          f"{args.experiment!r}, parent run {result.parent_run_id}")
    return result, table


def main(argv=None) -> StudyResult:
    args = build_parser().parse_args(argv)
    from experiments import workloads

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


if __name__ == "__main__":
    main()
