"""Reddi, Kale & Kumar (2018), section 5: the synthetic problem on which Adam fails.

    python -m experiments.reddi_synthetic                 # both problems, Adam vs AMSGrad (~30 s)
    python -m experiments.reddi_synthetic --ablation      # + bias correction x epsilon grid
    python -m experiments.reddi_synthetic --steps 200000 --variants adam,amsgrad

The online problem on F = [-1, 1] ("On the Convergence of Adam and Beyond", ICLR 2018, section 5):

* deterministic: f_t(x) = 1010·x when t mod 101 = 1, else f_t(x) = -10·x;
* stochastic:    f_t(x) = 1010·x with probability 0.01, else -10·x (i.i.d., seeded).

Over a period of 101 steps the gradients sum to 1010 - 100·10 = +10 (in expectation +0.2 per
step in the stochastic problem), so the optimum of the summed loss is x* = -1. Adam with
β1 = 0.9, β2 = 0.99 and step α/√t forgets the rare large gradient within a few dozen steps and
drifts to the worst point x = +1; AMSGrad keeps the largest second moment and goes to x* = -1.

Optimizers are the package's own (``kav.Adam``, ``kav.AMSGrad``), with a
``keras.optimizers.schedules.LearningRateSchedule`` for α/√t; after each step the iterate is
projected (clipped) onto [-1, 1]. The whole run is one ``tf.function`` (XLA-compiled by default)
over a scalar variable: about 3 million steps a second here.

Logged to MLflow: a parent run (parameters, a summary table, the plots ``reddi_x.png`` and
``reddi_regret.png``) and one nested run per (problem, optimizer) with the iterate ``x`` and the
average regret ``avg_regret`` = R_t/t, where
R_t = Σ_{s≤t} f_s(x_s) - min_{x∈F} Σ_{s≤t} f_s(x), at ``--log-points`` steps spaced
logarithmically (batched ``log_batch`` calls).

What the conclusion depends on (``--ablation``; ``tests/test_reproductions.py`` checks the
default): nothing in the bias correction, and nothing in ε as long as ε is small next to √v̂, which
here is about 100 (v̂ ≈ (1 - β2)·1010² / (1 - β2^101) ≈ 1.6·10⁴). AMSGrad reaches -1 in the paper's
form (``bias_correction=False``) and in PyTorch's bias-corrected form alike, since 1 - β2^t → 1
after a few hundred steps; Adam stays at +1 for every ε from 1e-8 to 100. With ε = 1000 the
denominator is dominated by ε, both methods become momentum SGD with step α/(ε√t), and the
deterministic Adam moves toward -1 too: the failure is a property of the adaptive step, which a
huge ε removes.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

PROBLEMS = ("deterministic", "stochastic")
BIG, SMALL, PERIOD, PROB = 1010.0, -10.0, 101, 0.01  # the paper's constants (section 5)

# variant name -> (description, factory(schedule, beta_1, beta_2, epsilon))
VARIANTS = {
    "adam": "kav.Adam (Kingma & Ba, bias-corrected)",
    "amsgrad": "kav.AMSGrad, bias_correction=False (Reddi et al.'s form, the default)",
    "amsgrad_bc": "kav.AMSGrad, bias_correction=True (PyTorch's form)",
    "keras_amsgrad": "keras.optimizers.Adam(amsgrad=True) (control)",
}
DEFAULT_VARIANTS = ("adam", "amsgrad", "amsgrad_bc")
ABLATION_EPSILONS = (1e-8, 1e-3, 1.0, 10.0, 100.0, 1000.0)


def _schedule_class():
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="kav_experiments")
    class InverseSqrtDecay(keras.optimizers.schedules.LearningRateSchedule):
        """α/√t with t = step + 1 (Reddi et al. section 5; Kingma & Ba section 6.1)."""

        def __init__(self, alpha):
            self.alpha = float(alpha)

        def __call__(self, step):
            return self.alpha / tf.sqrt(tf.cast(step, tf.float32) + 1.0)

        def get_config(self):
            return {"alpha": self.alpha}

        def __repr__(self):
            return f"{self.alpha:g}/sqrt(t)"

    return InverseSqrtDecay


_SCHEDULE = None


def inverse_sqrt_schedule(alpha: float):
    """α/√t as a ``keras.optimizers.schedules.LearningRateSchedule`` (t = step + 1), registered
    with Keras as ``kav_experiments>InverseSqrtDecay`` so that saved models reload."""
    global _SCHEDULE
    if _SCHEDULE is None:
        _SCHEDULE = _schedule_class()
    return _SCHEDULE(alpha)


def make_optimizer(variant: str, alpha: float, beta_1: float = 0.9, beta_2: float = 0.99,
                   epsilon: float = 1e-8):
    """The optimizer of ``variant`` (a key of ``VARIANTS``) with step α/√t."""
    import keras

    import keras_adam_variants as kav

    lr = inverse_sqrt_schedule(alpha)
    if variant == "adam":
        return kav.Adam(lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
    if variant == "amsgrad":
        return kav.AMSGrad(lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, bias_correction=False)
    if variant == "amsgrad_bc":
        return kav.AMSGrad(lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, bias_correction=True)
    if variant == "keras_amsgrad":
        return keras.optimizers.Adam(lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=True)
    raise ValueError(f"unknown variant {variant!r}: expected one of {', '.join(VARIANTS)}")


def gradients(problem: str, steps: int, seed: int = 0) -> np.ndarray:
    """f_t'(x) for t = 1..steps (the losses are linear, so the gradient is the coefficient)."""
    if problem == "deterministic":
        t = np.arange(1, steps + 1)
        return np.where(t % PERIOD == 1, BIG, SMALL).astype(np.float32)
    if problem == "stochastic":
        rng = np.random.default_rng(seed)
        return np.where(rng.random(steps) < PROB, BIG, SMALL).astype(np.float32)
    raise ValueError(f"unknown problem {problem!r}: expected one of {', '.join(PROBLEMS)}")


def trajectory(optimizer, grads: np.ndarray, x0: float = 0.0, jit: bool = True) -> np.ndarray:
    """Play the online game: x_t for t = 1..T, the point at which f_t is evaluated.

    Each step takes the gradient of f_t(x) = g_t·x with a ``GradientTape``, applies it with
    ``optimizer`` and projects x onto [-1, 1].
    """
    import keras
    import tensorflow as tf

    x = keras.Variable(np.float32(x0), dtype="float32", name="x")
    optimizer.build([x])

    @tf.function(jit_compile=jit)
    def play(g):
        n = tf.shape(g)[0]
        xs = tf.TensorArray(tf.float32, size=n)
        for i in tf.range(n):
            xs = xs.write(i, x.value)
            with tf.GradientTape() as tape:
                loss = g[i] * x.value
            optimizer.apply_gradients([(tape.gradient(loss, x.value), x)])
            x.assign(tf.clip_by_value(x.value, -1.0, 1.0))
        return xs.stack()

    return play(tf.constant(grads, tf.float32)).numpy()


def average_regret(xs: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """R_t / t for t = 1..T, in float64. min over F = [-1, 1] of x·S_t is -|S_t|."""
    g = grads.astype(np.float64)
    t = np.arange(1, len(xs) + 1, dtype=np.float64)
    return (np.cumsum(g * xs.astype(np.float64)) + np.abs(np.cumsum(g))) / t


@dataclasses.dataclass
class Outcome:
    problem: str
    variant: str
    epsilon: float
    xs: np.ndarray
    regret: np.ndarray
    seconds: float

    @property
    def x_final(self) -> float:
        return float(self.xs[-1])

    @property
    def x_tail_mean(self) -> float:
        """Mean of x_t over the last 10% of the steps (the stochastic iterate jitters)."""
        return float(self.xs[-max(1, len(self.xs) // 10):].mean())

    @property
    def regret_final(self) -> float:
        return float(self.regret[-1])


def run_one(problem: str, variant: str, steps: int, alpha: float = 1.0, beta_1: float = 0.9,
            beta_2: float = 0.99, epsilon: float = 1e-8, x0: float = 0.0, seed: int = 0,
            jit: bool = True) -> Outcome:
    """One optimizer on one problem: its trajectory and average regret."""
    grads = gradients(problem, steps, seed)
    start = time.perf_counter()
    xs = trajectory(make_optimizer(variant, alpha, beta_1, beta_2, epsilon), grads, x0, jit)
    seconds = time.perf_counter() - start
    return Outcome(problem, variant, epsilon, xs, average_regret(xs, grads), seconds)


def log_steps(steps: int, points: int) -> np.ndarray:
    """About ``points`` step indices (1-based) spaced logarithmically from 1 to ``steps``."""
    idx = np.unique(np.round(np.geomspace(1, steps, num=max(2, points))).astype(np.int64))
    return idx[(idx >= 1) & (idx <= steps)]


# ---- plots ------------------------------------------------------------------------------------

def plot(outcomes: list[Outcome], key: str, ylabel: str, steps_idx: np.ndarray):
    from .report import _pyplot

    plt = _pyplot()
    problems = [p for p in PROBLEMS if any(o.problem == p for o in outcomes)]
    fig, axes = plt.subplots(1, len(problems), figsize=(5.5 * len(problems), 4.0), squeeze=False)
    for ax, problem in zip(axes[0], problems):
        for o in outcomes:
            if o.problem == problem:
                values = getattr(o, key)[steps_idx - 1]
                ax.plot(steps_idx, values, label=o.variant, lw=1.5)
        ax.set_xscale("log")
        ax.set_xlabel("t")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{problem} problem")
        if key == "xs":
            ax.axhline(-1.0, color="k", lw=0.6, ls=":")
            ax.set_ylim(-1.1, 1.1)
        else:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---- command line -----------------------------------------------------------------------------

def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _names(choices):
    def parse(text):
        items = [v.strip() for v in text.split(",") if v.strip()]
        bad = [v for v in items if v not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"unknown {bad or 'empty list'}: expected a comma list of {', '.join(choices)}")
        return items
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.reddi_synthetic",
        description="Reddi, Kale & Kumar (2018) section 5: Adam vs AMSGrad on the synthetic "
                    "online problem on [-1, 1], logged to MLflow.")
    p.add_argument("--steps", type=int, default=5_000_000,
                   help="online steps T per run (default: 5,000,000, about 1.5 s a run)")
    p.add_argument("--alpha", type=float, default=1.0, help="α of the step α/√t (default: 1.0)")
    p.add_argument("--beta-1", type=float, default=0.9)
    p.add_argument("--beta-2", type=float, default=0.99)
    p.add_argument("--epsilon", type=float, default=1e-8)
    p.add_argument("--x0", type=float, default=0.0, help="starting point in [-1, 1] (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the stochastic problem")
    p.add_argument("--problems", type=_names(PROBLEMS), default=list(PROBLEMS))
    p.add_argument("--variants", type=_names(tuple(VARIANTS)), default=list(DEFAULT_VARIANTS),
                   help="comma list of: " + "; ".join(f"{k} = {v}" for k, v in VARIANTS.items()))
    p.add_argument("--ablation", action="store_true",
                   help="also run every variant at each of --ablation-epsilons and log a table of "
                        "where x ends up")
    p.add_argument("--ablation-epsilons", type=_floats, default=list(ABLATION_EPSILONS))
    p.add_argument("--log-points", type=int, default=500,
                   help="points of each curve logged to MLflow and plotted (log-spaced)")
    p.add_argument("--no-jit", dest="jit", action="store_false", help="run without XLA")
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--experiment", default="kav-reddi-synthetic")
    p.add_argument("--run-name", default=None)
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    if args.steps < PERIOD + 1:
        raise SystemExit(f"--steps must be at least {PERIOD + 1}")
    if not -1.0 <= args.x0 <= 1.0:
        raise SystemExit("--x0 must lie in [-1, 1]")

    import mlflow

    from . import tracking
    from .report import Table, fmt_duration, log_figure, log_params, log_series

    experiment_id = tracking.setup(args.tracking_uri, args.experiment)
    client = mlflow.MlflowClient()
    provenance = tracking.version_tags()
    parent = client.create_run(experiment_id, run_name=args.run_name or "reddi-synthetic",
                               tags={**provenance, "kav.study": "reddi_synthetic"})
    parent_id = parent.info.run_id
    log_params(client, parent_id, {
        "steps": args.steps, "alpha": args.alpha, "schedule": "alpha/sqrt(t)",
        "beta_1": args.beta_1, "beta_2": args.beta_2, "epsilon": args.epsilon, "x0": args.x0,
        "seed": args.seed, "problems": ",".join(args.problems),
        "variants": ",".join(args.variants), "jit": args.jit,
        "constants": f"{BIG:g}x if t mod {PERIOD} == 1 else {SMALL:g}x; p={PROB}"})
    started = time.monotonic()
    status = "FAILED"
    try:
        idx = log_steps(args.steps, args.log_points)
        outcomes = []
        table = Table(["problem", "optimizer", "epsilon", "x_T", "mean x (last 10%)",
                       "R_T/T", "ends near", "seconds"])
        total = len(args.problems) * len(args.variants)
        for problem in args.problems:
            for variant in args.variants:
                o = run_one(problem, variant, args.steps, args.alpha, args.beta_1, args.beta_2,
                            args.epsilon, args.x0, args.seed, args.jit)
                outcomes.append(o)
                child = client.create_run(
                    experiment_id, run_name=f"{problem}-{variant}",
                    tags={**provenance, "mlflow.parentRunId": parent_id,
                          "kav.study": "reddi_synthetic"})
                cid = child.info.run_id
                log_params(client, cid, {"problem": problem, "optimizer": variant,
                                         "description": VARIANTS[variant], "steps": args.steps,
                                         "alpha": args.alpha, "beta_1": args.beta_1,
                                         "beta_2": args.beta_2, "epsilon": args.epsilon,
                                         "x0": args.x0, "seed": args.seed})
                log_series(client, cid, {"x": (idx, o.xs[idx - 1]),
                                         "avg_regret": (idx, o.regret[idx - 1])})
                log_series(client, cid, {"x_final": ([args.steps], [o.x_final]),
                                         "x_tail_mean": ([args.steps], [o.x_tail_mean]),
                                         "avg_regret_final": ([args.steps], [o.regret_final]),
                                         "seconds": ([args.steps], [o.seconds])})
                client.set_terminated(cid, "FINISHED")
                near = "+1 (worst)" if o.x_tail_mean > 0.5 else (
                    "-1 (optimum)" if o.x_tail_mean < -0.5 else "in between")
                table.add(problem=problem, optimizer=variant, epsilon=args.epsilon,
                          **{"x_T": round(o.x_final, 4), "mean x (last 10%)": round(o.x_tail_mean, 4),
                             "R_T/T": round(o.regret_final, 5), "ends near": near,
                             "seconds": round(o.seconds, 2)})
                print(f"[{len(outcomes)}/{total}] {problem:13s} {variant:13s} x_T={o.x_final:+.4f}"
                      f"  mean x (last 10%)={o.x_tail_mean:+.4f}  R_T/T={o.regret_final:.5f}"
                      f"  ({o.seconds:.1f} s)", file=sys.stderr, flush=True)
        table.log(client, parent_id, "reddi_summary")
        log_figure(client, parent_id, plot(outcomes, "xs", "x_t", idx), "reddi_x.png")
        log_figure(client, parent_id, plot(outcomes, "regret", "average regret R_t / t", idx),
                   "reddi_regret.png")
        print(f"\nReddi et al. (2018) section 5, T = {args.steps:,} steps, step {args.alpha:g}/√t, "
              f"β1 = {args.beta_1}, β2 = {args.beta_2}, ε = {args.epsilon:g}, x0 = {args.x0:g}")
        print(table.to_text())
        result = {"parent_run_id": parent_id, "summary": table, "ablation": None}

        if args.ablation:
            ab = Table(["problem", "optimizer", "epsilon", "x_T", "mean x (last 10%)", "R_T/T"])
            for problem in args.problems:
                for variant in args.variants:
                    for eps in args.ablation_epsilons:
                        o = run_one(problem, variant, args.steps, args.alpha, args.beta_1,
                                    args.beta_2, eps, args.x0, args.seed, args.jit)
                        ab.add(problem=problem, optimizer=variant, epsilon=eps,
                               **{"x_T": round(o.x_final, 4),
                                  "mean x (last 10%)": round(o.x_tail_mean, 4),
                                  "R_T/T": round(o.regret_final, 5)})
            ab.log(client, parent_id, "reddi_ablation")
            print("Ablation: bias correction x epsilon")
            print(ab.to_text())
            result["ablation"] = ab
        status = "FINISHED"
        print(f"MLflow: experiment {args.experiment!r}, parent run {parent_id} "
              f"({fmt_duration(time.monotonic() - started)})")
        from . import cli

        cli.print_ui_hint(args.tracking_uri)
        return result
    finally:
        client.set_terminated(parent_id, status)


if __name__ == "__main__":
    main()
