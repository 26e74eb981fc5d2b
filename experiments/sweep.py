"""Learning-rate sweeps described by a TOML file.

    python -m experiments.sweep --config experiments/configs/digits_quick.toml
    python -m experiments.sweep --config my.toml --seeds 3 --tracking-uri http://127.0.0.1:5000

A study is data (the config file); what is fixed is code. Every (optimizer, learning rate, seed)
is one nested MLflow run (``experiments.train.run``) under one parent run; the best learning rate
of each optimizer -- the lowest final validation loss, averaged over seeds (a diverged run counts
as +inf) -- is printed and logged to the parent with a table (``sweep_best.csv/.md``), every
(optimizer, learning rate)'s results (``sweep_table.csv/.md``), a plot of final validation loss
against learning rate (``val_loss_vs_lr.png``), the learning curves, and the config file itself.

The config (all keys but ``workload``, ``optimizers`` and ``learning_rate`` are optional)::

    name = "digits-quick"          # parent run name            (default: the file's stem)
    description = "..."            # free text, logged as a param
    experiment = "kav-sweep"       # MLflow experiment          (default "kav-sweep")
    workload = "digits_mlp"        # see experiments.workloads
    optimizers = ["adam", "sgd"]   # names as kav.get accepts them, or "keras_adam"
    learning_rate = [1e-3, 1e-2]   # a grid, or a log-uniform sample:
    # learning_rate = { min = 1e-4, max = 1.0, num = 6, seed = 0 }
    seeds = 2                      # a count (seeds 0..N-1) or a list [0, 7]   (default 1)
    epochs = 5                     #                                            (default 10)
    batch_size = 128               #                                            (default 128)
    jit = false                    # XLA per run                                (default false)
    log_model = false              # log each trained model                     (default false)

    [options.sgd]                  # extra constructor arguments of one optimizer
    momentum = 0.9
    nesterov = true

Unknown keys (``optimisers``) fail before anything runs, naming the key and the closest valid one;
so do wrong types and out-of-range values. All problems of a file are reported at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import math
import os
import sys
import tomllib
from dataclasses import dataclass, field

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from .report import (  # noqa: E402
    Table, _pyplot, finite_or_inf, fmt_duration, line_styles, log_figure,
    log_series, mean_std)

TOP_KEYS = ("name", "description", "experiment", "workload", "optimizers", "learning_rate",
            "seeds", "epochs", "batch_size", "jit", "log_model", "options")
RANGE_KEYS = ("min", "max", "num", "seed")
REQUIRED = ("workload", "optimizers", "learning_rate")


class SweepConfigError(ValueError):
    """The sweep config is invalid; the message lists every problem found."""


@dataclass
class SweepConfig:
    workload: str
    optimizers: list[str]
    learning_rates: list[float]
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int = 10
    batch_size: int = 128
    jit: bool = False
    log_model: bool = False
    options: dict[str, dict] = field(default_factory=dict)
    name: str = "sweep"
    description: str = ""
    experiment: str = "kav-sweep"
    learning_rate_spec: object = None  # as written in the file (a list or a table)
    source: str = "<config>"


def _suggest(key: str, valid) -> str:
    """``"; did you mean 'optimizers'?"`` for the closest of ``valid`` (case-insensitive)."""
    lowered = {str(v).lower(): v for v in valid}
    close = difflib.get_close_matches(str(key).lower(), list(lowered), n=1, cutoff=0.5)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


def _type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def log_uniform(low: float, high: float, num: int, seed: int) -> list[float]:
    """``num`` learning rates drawn log-uniformly from [low, high] with ``seed``, sorted, rounded
    to 4 significant digits (so that they read well in tables and run names)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values = np.exp(rng.uniform(math.log(low), math.log(high), size=num))
    return sorted(float(f"{v:.4g}") for v in values)


def parse_config(raw: dict, source: str = "<config>") -> SweepConfig:
    """Check ``raw`` (a parsed TOML document) and build a :class:`SweepConfig`.

    Raises :class:`SweepConfigError` listing every problem: unknown keys (with the closest valid
    key), missing keys, wrong types, values out of range, unknown workload or optimizer names,
    invalid optimizer options.
    """
    from . import train, workloads

    errors: list[str] = []
    for key in raw:
        if key not in TOP_KEYS:
            errors.append(f"unknown key {key!r}{_suggest(key, TOP_KEYS)} "
                          f"(valid keys: {', '.join(TOP_KEYS)})")
    for key in REQUIRED:
        if key not in raw:
            errors.append(f"missing required key {key!r}")

    cfg = SweepConfig(workload="", optimizers=[], learning_rates=[], source=source,
                      name=os.path.splitext(os.path.basename(source))[0] or "sweep")

    def check(key, ok, expected):
        if key in raw and not ok(raw[key]):
            errors.append(f"{key!r} must be {expected}, got {_type_name(raw[key])} "
                          f"{raw[key]!r}")
            return False
        return key in raw

    if check("name", lambda v: isinstance(v, str) and v.strip(), "a non-empty string"):
        cfg.name = raw["name"]
    if check("description", lambda v: isinstance(v, str), "a string"):
        cfg.description = raw["description"]
    if check("experiment", lambda v: isinstance(v, str) and v.strip(), "a non-empty string"):
        cfg.experiment = raw["experiment"]
    if check("workload", lambda v: isinstance(v, str), "a string"):
        if raw["workload"] in workloads.names():
            cfg.workload = raw["workload"]
        else:
            errors.append(f"unknown workload {raw['workload']!r}"
                          f"{_suggest(raw['workload'], workloads.names())} "
                          f"(workloads: {', '.join(workloads.names())})")
    if check("optimizers", lambda v: isinstance(v, list) and v and all(isinstance(x, str) for x in v),
             "a non-empty list of optimizer names"):
        valid = train.optimizer_names()
        seen = set()
        for name in raw["optimizers"]:
            try:
                train.optimizer_label(name)
            except ValueError:
                errors.append(f"unknown optimizer {name!r} in 'optimizers'"
                              f"{_suggest(name, valid)} (optimizers: {', '.join(valid)})")
                continue
            if name.lower() in seen:
                errors.append(f"optimizer {name!r} is listed twice in 'optimizers'")
            seen.add(name.lower())
            cfg.optimizers.append(name)
    if check("epochs", lambda v: _is_int(v) and v >= 1, "an integer >= 1"):
        cfg.epochs = raw["epochs"]
    if check("batch_size", lambda v: _is_int(v) and v >= 1, "an integer >= 1"):
        cfg.batch_size = raw["batch_size"]
    if check("jit", lambda v: isinstance(v, bool), "true or false"):
        cfg.jit = raw["jit"]
    if check("log_model", lambda v: isinstance(v, bool), "true or false"):
        cfg.log_model = raw["log_model"]
    if "seeds" in raw:
        seeds = raw["seeds"]
        if _is_int(seeds) and seeds >= 1:
            cfg.seeds = list(range(seeds))
        elif (isinstance(seeds, list) and seeds and all(_is_int(s) and s >= 0 for s in seeds)
              and len(set(seeds)) == len(seeds)):
            cfg.seeds = list(seeds)
        else:
            errors.append(f"'seeds' must be a count >= 1 or a non-empty list of distinct integers "
                          f">= 0, got {seeds!r}")

    if "learning_rate" in raw:
        lr = cfg.learning_rate_spec = raw["learning_rate"]
        if isinstance(lr, list):
            if not lr:
                errors.append("'learning_rate' grid is empty")
            for value in lr:
                if not _is_number(value) or not (value > 0 and math.isfinite(value)):
                    errors.append(f"'learning_rate' grid values must be numbers > 0, got {value!r}")
            if all(_is_number(v) for v in lr) and len(set(lr)) != len(lr):
                errors.append(f"'learning_rate' grid has repeated values: {lr!r}")
            if not any("learning_rate" in e for e in errors):
                cfg.learning_rates = [float(v) for v in lr]
        elif isinstance(lr, dict):
            sub_errors = []
            for key in lr:
                if key not in RANGE_KEYS:
                    sub_errors.append(f"unknown key {key!r} in 'learning_rate'"
                                      f"{_suggest(key, RANGE_KEYS)} (valid keys: "
                                      f"{', '.join(RANGE_KEYS)})")
            for key in ("min", "max", "num"):
                if key not in lr:
                    sub_errors.append(f"'learning_rate' range needs {key!r}")
            for key in ("min", "max"):
                if key in lr and not (_is_number(lr[key]) and lr[key] > 0
                                      and math.isfinite(lr[key])):
                    sub_errors.append(f"'learning_rate.{key}' must be a number > 0, "
                                      f"got {lr[key]!r}")
            if "num" in lr and not (_is_int(lr["num"]) and 1 <= lr["num"] <= 1000):
                sub_errors.append(f"'learning_rate.num' must be an integer in [1, 1000], "
                                  f"got {lr['num']!r}")
            if "seed" in lr and not (_is_int(lr["seed"]) and lr["seed"] >= 0):
                sub_errors.append(f"'learning_rate.seed' must be an integer >= 0, "
                                  f"got {lr['seed']!r}")
            if not sub_errors and not lr["min"] < lr["max"]:
                sub_errors.append(f"'learning_rate.min' ({lr['min']}) must be below "
                                  f"'learning_rate.max' ({lr['max']})")
            if not sub_errors:
                cfg.learning_rates = log_uniform(lr["min"], lr["max"], lr["num"], lr.get("seed", 0))
            errors += sub_errors
        else:
            errors.append(f"'learning_rate' must be a list (a grid) or a table "
                          f"{{min, max, num, seed}}, got {_type_name(lr)} {lr!r}")

    if "options" in raw:
        options = raw["options"]
        if not isinstance(options, dict):
            errors.append(f"'options' must be a table of tables ([options.sgd] ...), "
                          f"got {_type_name(options)}")
        else:
            listed = {n.lower(): n for n in cfg.optimizers}
            for name, args in options.items():
                if name.lower() not in listed:
                    errors.append(f"[options.{name}] names an optimizer that is not in "
                                  f"'optimizers'{_suggest(name, list(listed.values()))}")
                    continue
                if not isinstance(args, dict):
                    errors.append(f"[options.{name}] must be a table of constructor arguments")
                    continue
                if "learning_rate" in args:
                    errors.append(f"[options.{name}] must not set 'learning_rate' (the sweep "
                                  "sets it)")
                    continue
                try:
                    train.build_optimizer(listed[name.lower()], None, args)
                except (ValueError, TypeError) as err:
                    errors.append(f"[options.{name}]: {err}")
                    continue
                cfg.options[listed[name.lower()]] = dict(args)

    if errors:
        raise SweepConfigError(f"invalid sweep config {source}:\n  - " + "\n  - ".join(errors))
    return cfg


def load_config(path: str) -> SweepConfig:
    """Read and check the TOML file ``path``, or the built-in config of that name
    (:func:`experiments.configs.resolve_config`); :class:`SweepConfigError` on any problem."""
    from .configs import ConfigNotFoundError, resolve_config

    try:
        path = resolve_config(path)
    except ConfigNotFoundError as err:
        raise SweepConfigError(str(err)) from None
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as err:
        raise SweepConfigError(f"cannot read sweep config {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise SweepConfigError(f"sweep config {path} is not valid TOML: {err}") from None
    return parse_config(raw, source=path)


# ---- running and reporting ---------------------------------------------------------------------

def arm_label(optimizer_label: str, lr: float) -> str:
    return f"{optimizer_label}_lr{lr:g}"


def make_arms(cfg: SweepConfig):
    """One :class:`experiments.compare.Arm` per (optimizer, learning rate); returns the arms and
    ``{arm label: (optimizer label, learning rate)}``."""
    from .compare import Arm, arms_from_names

    arms, index = [], {}
    for name in cfg.optimizers:
        base = arms_from_names([name])[0]
        for lr in cfg.learning_rates:
            label = arm_label(base.label, lr)
            arms.append(Arm(label, name, lr, dict(cfg.options.get(name, {}))))
            index[label] = (base.label, lr)
    return arms, index


@dataclass
class Point:
    optimizer: str
    learning_rate: float
    val_losses: list[float]
    val_accuracies: list[float]

    @property
    def score(self) -> float:
        """Mean final validation loss over seeds; +inf when any seed diverged."""
        return finite_or_inf(mean_std(self.val_losses)[0])


def aggregate(result, index) -> dict[str, list[Point]]:
    """``{optimizer label: [Point per learning rate, ascending]}``."""
    points: dict[str, list[Point]] = {}
    for arm, runs in result.by_arm().items():
        opt, lr = index[arm.label]
        points.setdefault(opt, []).append(
            Point(opt, lr, [o.final("val_loss") for o in runs],
                  [o.final("val_accuracy") for o in runs]))
    for values in points.values():
        values.sort(key=lambda p: p.learning_rate)
    return points


def best_points(points: dict[str, list[Point]]) -> dict[str, Point]:
    """The best learning rate of each optimizer (lowest mean final validation loss; ties go to
    the smaller learning rate)."""
    return {opt: min(values, key=lambda p: (p.score, p.learning_rate))
            for opt, values in points.items()}


def lr_figure(points: dict[str, list[Point]], best: dict[str, Point], title: str):
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for (opt, values), (color, dash) in zip(points.items(), line_styles(len(points))):
        lrs = np.array([p.learning_rate for p in values])
        arr = [np.asarray(p.val_losses, dtype=np.float64) for p in values]
        mean = np.array([a.mean() if np.all(np.isfinite(a)) else np.nan for a in arr])
        lo = np.array([np.nanmin(a) if np.any(np.isfinite(a)) else np.nan for a in arr])
        hi = np.array([np.nanmax(a) if np.any(np.isfinite(a)) else np.nan for a in arr])
        (line,) = ax.plot(lrs, mean, marker="o", label=opt, color=color, ls=dash)
        ax.fill_between(lrs, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
        b = best[opt]
        if math.isfinite(b.score):
            ax.plot([b.learning_rate], [b.score], marker="*", ms=14, color=line.get_color(),
                    markeredgecolor="k")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final validation loss (mean over seeds; band: min-max)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def report(cfg: SweepConfig, result, index, config_text: str | None = None):
    """Print and log the sweep's tables and plots to the parent run; returns (best, tables)."""
    import mlflow

    from . import compare

    client = mlflow.MlflowClient()
    pid = result.parent_run_id
    points = aggregate(result, index)
    best = best_points(points)

    def stats(p: Point) -> dict:
        loss, loss_std = mean_std(p.val_losses)
        acc, acc_std = mean_std(p.val_accuracies)
        return {"val_loss_mean": loss, "val_loss_std": loss_std, "val_accuracy_mean": acc,
                "val_accuracy_std": acc_std, "seeds": len(p.val_losses)}

    table = Table(["optimizer", "learning_rate", "val_loss_mean", "val_loss_std",
                   "val_accuracy_mean", "val_accuracy_std", "seeds", "best"])
    for opt, values in points.items():
        for p in values:
            table.add(optimizer=opt, learning_rate=p.learning_rate, **stats(p),
                      best="*" if p is best[opt] else "")
    best_table = Table(["optimizer", "best_learning_rate", "val_loss_mean", "val_loss_std",
                        "val_accuracy_mean", "val_accuracy_std", "seeds"])
    for opt, p in sorted(best.items(), key=lambda kv: (kv[1].score, kv[0])):
        best_table.add(optimizer=opt, best_learning_rate=p.learning_rate
                       if math.isfinite(p.score) else "none (all diverged)", **stats(p))

    table.log(client, pid, "sweep_table")
    best_table.log(client, pid, "sweep_best")
    compare.log_summary(result, compare.summarize(result), f"sweep {cfg.name} on {cfg.workload}",
                        name="runs_table")
    log_figure(client, pid, lr_figure(points, best, f"{cfg.name}: {cfg.workload}, "
                                      f"{cfg.epochs} epochs"), "val_loss_vs_lr.png")
    if config_text is not None:
        client.log_text(pid, config_text, "sweep_config.toml")
    metrics = {}
    for opt, p in best.items():
        if math.isfinite(p.score):
            metrics[f"{opt}.best_lr"] = p.learning_rate
            metrics[f"{opt}.best_val_loss"] = p.score
    log_series(client, pid, {k: ([0], [v]) for k, v in metrics.items()})
    for opt, p in best.items():
        client.set_tag(pid, f"best_lr.{opt}", str(p.learning_rate) if math.isfinite(p.score)
                       else "none")
    return best, table, best_table


def run_sweep(cfg: SweepConfig, *, tracking_uri: str | None = None, data_dir: str | None = None,
              config_text: str | None = None, progress_stream=None, workers: int = 1,
              device: str = "cpu", cluster: str | None = None):
    """Run ``cfg`` (nested runs under a parent), log and print its report; returns
    ``(StudyResult, {optimizer: best Point})``."""
    from . import compare

    arms, index = make_arms(cfg)
    lr_spec = cfg.learning_rate_spec if cfg.learning_rate_spec is not None else cfg.learning_rates
    params = {"config": os.path.abspath(cfg.source) if os.path.exists(cfg.source) else cfg.source,
              "learning_rates": ",".join(f"{lr:g}" for lr in cfg.learning_rates),
              "learning_rate_spec": lr_spec, "sweep_optimizers": ",".join(cfg.optimizers)}
    if cfg.description:
        params["description"] = cfg.description
    for name, args in cfg.options.items():
        params[f"options.{name}"] = args
    print(f"sweep {cfg.name}: {len(cfg.optimizers)} optimizers x {len(cfg.learning_rates)} "
          f"learning rates x {len(cfg.seeds)} seeds = {len(arms) * len(cfg.seeds)} runs of "
          f"{cfg.epochs} epochs on {cfg.workload}", file=progress_stream or sys.stderr, flush=True)
    result = compare.run_study(
        arms, workload=cfg.workload, seeds=cfg.seeds, epochs=cfg.epochs,
        batch_size=cfg.batch_size, tracking_uri=tracking_uri, experiment=cfg.experiment,
        run_name=cfg.name, jit=cfg.jit, log_model=cfg.log_model, data_dir=data_dir,
        study="sweep", params=params, progress_stream=progress_stream, workers=workers,
        device=device, cluster=cluster)
    status = "FAILED"
    try:
        best, table, best_table = report(cfg, result, index, config_text)
        status = None
    finally:
        status = compare.finish(result, status)
    print(f"\nsweep {cfg.name} on {cfg.workload}, {cfg.epochs} epochs: final validation loss, "
          f"mean ± std over seeds {','.join(map(str, cfg.seeds))}")
    print(compare.display_table(table).to_text())
    print("best learning rate per optimizer (lowest mean final validation loss):")
    print(compare.display_table(best_table).to_text())
    compare.print_failures(result)
    print(f"{len(result.outcomes)} runs in {fmt_duration(result.wall_s)}; MLflow experiment "
          f"{cfg.experiment!r}, parent run {result.parent_run_id} ({status})")
    return result, best


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.sweep",
        description="Run a learning-rate sweep described by a TOML file (see the module doc "
                    "or experiments/configs/) as nested MLflow runs; report the best learning "
                    "rate per optimizer.")
    p.add_argument("--config", required=True,
                   help="the sweep's TOML file, or a built-in config by name (digits_quick, "
                        "digits_loguniform)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                        "sqlite:///<cwd>/mlruns/mlflow.db)")
    p.add_argument("--experiment", default=None, help="override the config's experiment")
    p.add_argument("--seeds", default=None, help="override the config's seeds (count or list)")
    p.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    p.add_argument("--data-dir", default=None,
                   help="TFDS data dir (default: $TFDS_DATA_DIR, else ~/tensorflow_datasets)")
    p.add_argument("--check", action="store_true",
                   help="only check the config and print the runs it would make")
    from .compare import add_engine_arguments

    add_engine_arguments(p)
    return p


def run_cli(argv=None):
    """Parse ``argv`` and run the sweep; returns ``(StudyResult, best)`` (None with --check).
    Raises ``SystemExit("error: ...")`` on a bad config."""
    args = build_parser().parse_args(argv)
    from . import compare, datasets, tracking

    try:
        cfg = load_config(args.config)
        overrides = {}
        if args.experiment is not None:
            overrides["experiment"] = args.experiment
        if args.epochs is not None:
            if args.epochs < 1:
                raise SweepConfigError("--epochs must be at least 1")
            overrides["epochs"] = args.epochs
        if args.seeds is not None:
            try:
                overrides["seeds"] = compare.parse_seeds(args.seeds)
            except argparse.ArgumentTypeError as err:
                raise SweepConfigError(str(err)) from None
        cfg = dataclasses.replace(cfg, **overrides)
    except SweepConfigError as err:
        raise SystemExit(f"error: {err}") from None
    if args.check:
        arms, _ = make_arms(cfg)
        print(f"{args.config}: OK -- {len(arms)} (optimizer, learning rate) pairs x "
              f"{len(cfg.seeds)} seeds = {len(arms) * len(cfg.seeds)} runs; learning rates "
              f"{', '.join(f'{lr:g}' for lr in cfg.learning_rates)}")
        return None
    from .configs import resolve_config

    with open(resolve_config(args.config), encoding="utf-8") as f:
        text = f.read()
    try:
        return run_sweep(cfg, tracking_uri=args.tracking_uri, data_dir=args.data_dir,
                         config_text=text, **compare.engine_settings(args))
    except (ValueError, datasets.DatasetNotPreparedError,
            tracking.TrackingUnavailableError) as err:
        raise SystemExit(f"error: {err}") from None


def main(argv=None) -> int:
    """``python -m experiments.sweep``; returns the exit status (0 all runs finished, 1 a run
    failed, 2 a bad config or environment, 130 interrupted)."""
    from . import cli, compare

    status = compare.exit_status(run_cli, argv)
    cli.print_ui_hint_after(argv, status)
    return status


if __name__ == "__main__":
    sys.exit(main())
