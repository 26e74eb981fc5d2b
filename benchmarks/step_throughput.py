"""Optimizer step throughput: ours against Keras' built-ins, and against the memory roofline.

An optimizer step reads and writes every parameter and slot once: it is memory-bound. This
benchmark measures, for each optimizer (and the option sets that add slots), parameters updated
per second by ``keras_adam_variants`` and by its Keras counterpart, interleaved in one process
(ours, Keras, then Keras, ours, …: each round times the two back to back, and the figure that
counts is the median over rounds of each round's paired ratio Keras time / ours time, with its
interquartile range; a slow drift or a burst of load from other processes hits both sides of a
pair alike; half the rounds allocate our variables and slots first, half Keras', because the side
allocated second ran 3-12% faster in A/A runs), in three modes:

* ``eager``     -- ``optimizer.apply_gradients`` called eagerly;
* ``function``  -- inside ``tf.function``;
* ``xla``       -- inside ``tf.function(jit_compile=True)``;

on two model shapes -- ``large`` (8 variables of 1000 x 1000 float32) and ``many`` (a ResNet-34
like list of ~150 variables of mixed sizes, ~10M parameters) -- plus ``huge`` (4 x 25M = 100M
parameters, XLA only), where the roofline figure is the one that counts.

Roofline: bytes the algorithm must move per parameter (the byte model, ``BYTES`` below) times
parameters per second, divided by the bandwidth of a trivial memory-bound kernel measured in the
same run, ``var.assign_sub(lr * g)`` under XLA (reads var and g, writes var: 12 bytes per
float32 parameter), on the same variables shape.

Usage::

    python benchmarks/step_throughput.py            # full run, ~6-9 minutes on 2 cores
    python benchmarks/step_throughput.py --quick    # smoke run, ~1-2 minutes
    python benchmarks/step_throughput.py --many-cases all   # every case on `many` too (+8 min)
    python benchmarks/step_throughput.py --cases adam,sgd --modes xla --shapes large,huge
    python benchmarks/step_throughput.py --optimizers adam,amsgrad_bc,adamax --modes xla \
        --shapes large --reps 15 --no-mlflow     # the XLA step against Keras, 8 x 1M float32

Prints a markdown table and logs the same figures to MLflow as one run (experiment
``step_throughput``; ``--tracking-uri``, default ``sqlite:///<cwd>/mlruns/mlflow.db``;
``--no-mlflow`` to skip).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

import _common  # noqa: F401  (sets the environment and sys.path first)
from _common import calibrate, log_run, machine_description, markdown_table

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_adam_variants as kav  # noqa: E402

F32 = 4  # bytes per parameter, slot entry and gradient entry

# The byte model: each step must read the parameter, the gradient and every slot, and write the
# parameter and every slot back. bytes/param = 4 * (2 + 1 + 2 * slots) for float32.
#   case id: (our optimizer, Keras counterpart, slots)
CASES = {
    "adam": (lambda: kav.Adam(), lambda: keras.optimizers.Adam(), 2),  # m, v
    "amsgrad": (lambda: kav.AMSGrad(), lambda: keras.optimizers.Adam(amsgrad=True), 3),  # m, v, v̂
    "amsgrad_bc": (
        lambda: kav.AMSGrad(bias_correction=True),
        lambda: keras.optimizers.Adam(amsgrad=True),
        3,
    ),
    "rmsprop": (lambda: kav.RMSprop(), lambda: keras.optimizers.RMSprop(), 1),  # E
    "rmsprop_cm": (  # E, ḡ, b
        lambda: kav.RMSprop(centered=True, momentum=0.9),
        lambda: keras.optimizers.RMSprop(centered=True, momentum=0.9),
        3,
    ),
    "adagrad": (lambda: kav.Adagrad(), lambda: keras.optimizers.Adagrad(), 1),  # G
    "adadelta": (lambda: kav.Adadelta(), lambda: keras.optimizers.Adadelta(), 2),  # E[g²], E[Δ²]
    "adamax": (lambda: kav.Adamax(), lambda: keras.optimizers.Adamax(), 2),  # m, u
    "adamw": (  # m, v; both decay θ by lr·0.01·θ first (Keras' default weight_decay is 0.004)
        lambda: kav.AdamW(weight_decay=0.01),
        lambda: keras.optimizers.AdamW(weight_decay=0.01),
        2,
    ),
    "nadam": (lambda: kav.Nadam(), lambda: keras.optimizers.Nadam(), 2),  # m, v (+ a scalar)
    "sgd": (lambda: kav.SGD(), lambda: keras.optimizers.SGD(), 0),
    "sgd_momentum": (
        lambda: kav.SGD(momentum=0.9),
        lambda: keras.optimizers.SGD(momentum=0.9),
        1,
    ),
    "sgd_nesterov": (
        lambda: kav.SGD(momentum=0.9, nesterov=True),
        lambda: keras.optimizers.SGD(momentum=0.9, nesterov=True),
        1,
    ),
}
MODES = ("eager", "function", "xla")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def bytes_per_param(slots):
    return F32 * (2 + 1 + 2 * slots)


def resnet_like_shapes(widths=(44, 88, 176, 352), blocks=(3, 4, 6, 3), classes=1000):
    """Variable shapes of a ResNet-34-like network: each convolution has a kernel, a bias and a
    batch-norm scale and offset (4 variables), then a dense head: ~150 variables, ~10M params."""
    shapes = []

    def conv(k, cin, cout):
        shapes.extend([(k, k, cin, cout), (cout,), (cout,), (cout,)])

    conv(7, 3, widths[0])
    cin = widths[0]
    for stage, (width, n) in enumerate(zip(widths, blocks)):
        for block in range(n):
            conv(3, cin, width)
            conv(3, width, width)
            if block == 0 and stage > 0:
                conv(1, cin, width)  # projection shortcut
            cin = width
    shapes.extend([(cin, classes), (classes,)])
    return shapes


def shape_sets(quick):
    if quick:  # a smoke run: the same kinds of shapes, smaller and with fewer variables
        return {
            "large": [(1000, 1000)] * 8,
            "many": resnet_like_shapes(blocks=(1, 1, 1, 1)),
            "huge": [(2000, 2000)] * 4,
        }
    return {
        "large": [(1000, 1000)] * 8,
        "many": resnet_like_shapes(),
        "huge": [(5000, 5000)] * 4,
    }


# The "many" shape costs tens of seconds of tracing / XLA compilation per optimizer and mode (Keras
# traces ~150 update steps), so by default it runs one case per code path: a TensorFlow kernel
# (adam, sgd_momentum), a kernel outside XLA only (amsgrad), an XLA-fused rule (rmsprop_cm; adamax
# takes the same path). `--many-cases all` runs every case (about 8 more minutes).
MANY_DEFAULT = "adam,amsgrad,rmsprop_cm,sgd_momentum"
QUICK_CASES = "adam,amsgrad,rmsprop_cm,sgd_momentum"


def make_variables(shapes, seed):
    if sum(np.prod(s) for s in shapes) > 50_000_000:  # huge: values do not change the speed
        return [keras.Variable(np.full(s, 0.1, np.float32), name=f"w{i}") for i, s in enumerate(shapes)]
    rng = np.random.default_rng(seed)
    return [
        keras.Variable(rng.standard_normal(s, dtype=np.float32) * 0.1, name=f"w{i}")
        for i, s in enumerate(shapes)
    ]


def make_gradients(shapes, seed=123):
    if sum(np.prod(s) for s in shapes) > 50_000_000:
        return [tf.fill(s, 0.001) for s in shapes]
    rng = np.random.default_rng(seed)
    # Nonzero everywhere and of ordinary size: no denormals, no special cases.
    return [
        tf.constant((rng.standard_normal(s, dtype=np.float32) * 0.01) + 0.001) for s in shapes
    ]


def stepper(optimizer, variables, grads, mode):
    """One optimizer step as a zero-argument callable in ``mode``."""

    def step(gs):
        optimizer.apply_gradients(zip(gs, variables))

    if mode == "eager":
        return lambda: step(grads)
    fn = tf.function(step, jit_compile=(mode == "xla"))
    return lambda: fn(grads)


def roofline_stepper(variables, grads):
    """``var.assign_sub(lr * g)`` for every variable under XLA: 12 bytes per parameter."""
    lr = tf.Variable(1e-6, dtype=tf.float32)

    @tf.function(jit_compile=True)
    def step(gs):
        for v, g in zip(variables, gs):
            v.assign_sub(lr * g)

    return lambda: step(grads)


def paired(ours, keras_step, roofline=None, reps=5, target_s=0.15, sync=None, warmup=1,
           clock=time.perf_counter):
    """Time ``ours`` against ``keras_step`` in ``reps`` rounds of back-to-back samples.

    Each zero-argument callable (one step) is first called ``warmup`` times (tracing, XLA
    compilation), then calibrated to about ``target_s`` seconds per sample. Round r samples
    ours then Keras (Keras then ours in odd rounds), then the roofline kernel if given, so each
    pair is measured under the same load. ``sync()`` is called after each sample, inside the
    timing. ``clock`` reads the time: wall time (``time.perf_counter``) or the process's CPU
    time (``time.process_time``, all threads: on a machine shared with other processes it leaves
    out the time spent waiting for a core). Returns ``{name: [seconds per call, one per
    round]}`` and ``"ratio"``: each round's Keras time / ours time (> 1: ours faster).
    """
    contenders = {"ours": ours, "keras": keras_step}
    if roofline is not None:
        contenders["roofline"] = roofline
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
        if sync:
            sync()
    calls = {name: calibrate(fn, target_s) for name, fn in contenders.items()}
    samples = {name: [] for name in contenders}

    def sample(name):
        fn, n = contenders[name], calls[name]
        start = clock()
        for _ in range(n):
            fn()
        if sync:
            sync()
        samples[name].append((clock() - start) / n)

    for rep in range(reps):
        for name in (("ours", "keras") if rep % 2 == 0 else ("keras", "ours")):
            sample(name)
        if roofline is not None:
            sample("roofline")
    samples["ratio"] = [k / o for k, o in zip(samples["keras"], samples["ours"])]
    return samples


def _time_pair(ours_factory, keras_factory, var_shapes, grads, mode, roof, reps, target,
               ours_first, clock):
    """`paired` timing of fresh optimizers on fresh variables, ours built first or second."""
    sides = {}
    for side in (("ours", "keras") if ours_first else ("keras", "ours")):
        variables = make_variables(var_shapes, seed=1)
        optimizer = (ours_factory if side == "ours" else keras_factory)()
        optimizer.build(variables)  # eagerly: slot creation is not part of the tracing
        sides[side] = (optimizer, stepper(optimizer, variables, grads, mode))
    (ours_opt, ours_step), (keras_opt, keras_step) = sides["ours"], sides["keras"]
    timing = paired(
        ours_step, keras_step, roof, reps=reps, target_s=target,
        sync=lambda: (ours_opt.iterations.numpy(), keras_opt.iterations.numpy()),
        warmup=1,  # the first call traces / compiles; calibration is a second one
        clock=CLOCKS[clock],
    )
    del sides, ours_step, keras_step, ours_opt, keras_opt
    gc.collect()
    return timing


def quartiles(values):
    """(first quartile, median, third quartile) of ``values``."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def _rss_gb():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (OSError, ValueError):
        return float("nan")


def _run_child(args, case):
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        cmd = [
            sys.executable, os.path.abspath(__file__), "--shapes", "huge", "--cases", case,
            "--modes", "xla", "--reps", str(args.reps), "--clock", args.clock, "--sample-seconds",
            str(args.sample_seconds), "--no-mlflow", "--child-json", out,
        ] + (["--quick"] if args.quick else [])
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            data = json.load(f)
    return data["results"], data["roofline_samples"].get("huge", [])


def run(args):
    shapes = shape_sets(args.quick)
    reps, target = (3, 0.08) if args.quick else (args.reps, args.sample_seconds)
    results = []  # dicts
    roofline_samples = {}  # shape -> [bytes/s]
    t_start = time.perf_counter()

    for shape_name in args.shapes:
        if shape_name == "huge" and args.child_json is None:
            # Each case in its own process: a few GB per case, and the allocator keeps what a
            # process once held, so one process for all of them would run out of memory.
            for case in args.cases:
                rows, samples = _run_child(args, case)
                results.extend(rows)
                roofline_samples.setdefault("huge", []).extend(samples)
            continue
        var_shapes = shapes[shape_name]
        n_params = int(sum(np.prod(s) for s in var_shapes))
        grads = make_gradients(var_shapes)
        roof_vars = make_variables(var_shapes, seed=7)
        roof = roofline_stepper(roof_vars, grads)
        modes = ["xla"] if shape_name == "huge" else args.modes
        print(
            f"# shape {shape_name}: {len(var_shapes)} variables, {n_params / 1e6:.1f}M params",
            file=sys.stderr,
        )
        for case in args.cases:
            if shape_name == "many" and case not in args.many_cases:
                continue
            ours_factory, keras_factory, slots = CASES[case]
            for mode in modes:
                if shape_name == "huge" and mode != "xla":
                    continue
                # The side whose variables and slots are allocated second ran 3-12% faster in
                # A/A runs here (the same optimizer on both sides): half the rounds build ours
                # first, half Keras' first, and the paired ratios of both halves are pooled.
                timing = {"ours": [], "keras": [], "ratio": [], "roofline": []}
                for half, ours_first in ((0, True), (1, False)):
                    half_reps = (reps + 1 - half) // 2
                    if half_reps == 0:
                        continue
                    part = _time_pair(ours_factory, keras_factory, var_shapes, grads, mode,
                                      roof if mode == "xla" else None, half_reps, target,
                                      ours_first, args.clock)
                    for key, values in part.items():
                        timing[key].extend(values)
                if timing["roofline"]:
                    roofline_samples.setdefault(shape_name, []).extend(
                        12 * n_params / s for s in timing["roofline"]
                    )
                q1, ratio, q3 = quartiles(timing["ratio"])
                row = {
                    "case": case,
                    "shape": shape_name,
                    "mode": mode,
                    "params": n_params,
                    "variables": len(var_shapes),
                    "bytes_per_param": bytes_per_param(slots),
                    "ours_s": statistics.median(timing["ours"]),
                    "keras_s": statistics.median(timing["keras"]),
                    "ratio": ratio,  # median over rounds of Keras time / ours time
                    "ratio_q1": q1,
                    "ratio_q3": q3,
                    "rounds": len(timing["ratio"]),
                }
                row["ours_pps"] = n_params / row["ours_s"]
                row["keras_pps"] = n_params / row["keras_s"]
                results.append(row)
                print(
                    f"  {case:13s} {mode:8s} ours {row['ours_s'] * 1e3:8.2f} ms  keras "
                    f"{row['keras_s'] * 1e3:8.2f} ms  x{ratio:.3f} (IQR {q1:.3f}-{q3:.3f}, "
                    f"{row['rounds']} rounds)   "
                    f"[{time.perf_counter() - t_start:.0f}s, rss {_rss_gb():.1f} GB]",
                    file=sys.stderr,
                )
        del roof, roof_vars, grads
        gc.collect()

    if args.child_json is not None:
        import json

        with open(args.child_json, "w") as f:
            json.dump({"results": results, "roofline_samples": roofline_samples}, f)
    bandwidth = {k: statistics.median(v) for k, v in roofline_samples.items()}
    for row in results:
        bw = bandwidth.get(row["shape"])
        row["roofline_Bps"] = bw
        if bw:
            row["ours_roof"] = row["bytes_per_param"] * row["ours_pps"] / bw
            row["keras_roof"] = row["bytes_per_param"] * row["keras_pps"] / bw
    return results, bandwidth, time.perf_counter() - t_start


def format_table(results, bandwidth):
    headers = [
        "optimizer", "shape", "mode", "B/param", "ours Mparam/s", "Keras Mparam/s",
        "ours/Keras (median of paired ratios)", "IQR", "ours % roofline", "Keras % roofline",
    ]
    rows = []
    for r in results:
        pct = lambda x: f"{100 * x:.0f}%" if x is not None else "–"  # noqa: E731
        rows.append([
            r["case"], r["shape"], r["mode"], r["bytes_per_param"],
            f"{r['ours_pps'] / 1e6:.0f}", f"{r['keras_pps'] / 1e6:.0f}", f"{r['ratio']:.3f}",
            f"{r['ratio_q1']:.3f}-{r['ratio_q3']:.3f}",
            pct(r.get("ours_roof")), pct(r.get("keras_roof")),
        ])
    table = markdown_table(headers, rows)
    bw_lines = [
        f"Roofline (`var.assign_sub(lr*g)` under XLA, 12 B/param) on `{k}`: {v / 1e9:.2f} GB/s"
        for k, v in bandwidth.items()
    ]
    return table + "\n\n" + "\n".join(bw_lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (~1 minute)")
    parser.add_argument("--cases", "--optimizers", dest="cases", default=None,
                        help=f"comma-separated case ids (default all): {', '.join(CASES)}")
    parser.add_argument(
        "--many-cases", default=None,
        help=f"cases run on the `many` shape: ids or `all` (default {MANY_DEFAULT})",
    )
    parser.add_argument("--modes", default=",".join(MODES), help="eager,function,xla")
    parser.add_argument("--shapes", default="large,many,huge", help="large,many,huge")
    parser.add_argument("--reps", type=int, default=5, help="samples per contender")
    parser.add_argument("--sample-seconds", type=float, default=0.15, help="length of a sample")
    parser.add_argument(
        "--clock", choices=sorted(CLOCKS), default="wall",
        help="wall time (default), or the process's CPU time over all its threads: steadier on "
             "a machine other processes load (it leaves out the waits for a core)",
    )
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--experiment", default="step_throughput")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--child-json", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cases is None:
        args.cases = QUICK_CASES if args.quick else ",".join(CASES)
    if args.many_cases is None:
        args.many_cases = "adam" if args.quick else MANY_DEFAULT
    if args.many_cases == "all":
        args.many_cases = ",".join(CASES)
    args.cases = [c for c in args.cases.split(",") if c]
    args.many_cases = [c for c in args.many_cases.split(",") if c]
    args.modes = [m for m in args.modes.split(",") if m]
    args.shapes = [s for s in args.shapes.split(",") if s]
    unknown = [c for c in args.cases if c not in CASES] + [m for m in args.modes if m not in MODES]
    if unknown:
        parser.error(f"unknown case/mode {unknown}")

    results, bandwidth, elapsed = run(args)
    if args.child_json is not None:
        return
    table = format_table(results, bandwidth)
    print(table)
    print(f"({elapsed:.0f} s; load average {machine_description()['machine.loadavg']})")
    if not args.no_mlflow:
        metrics = {}
        for r in results:
            key = f"{r['case']}.{r['shape']}.{r['mode']}"
            metrics[f"{key}.ours_Mparams_per_s"] = r["ours_pps"] / 1e6
            metrics[f"{key}.keras_Mparams_per_s"] = r["keras_pps"] / 1e6
            metrics[f"{key}.ratio"] = r["ratio"]
            metrics[f"{key}.ratio_q1"] = r["ratio_q1"]
            metrics[f"{key}.ratio_q3"] = r["ratio_q3"]
            if r.get("ours_roof") is not None:
                metrics[f"{key}.ours_roofline_pct"] = 100 * r["ours_roof"]
                metrics[f"{key}.keras_roofline_pct"] = 100 * r["keras_roof"]
        for k, v in bandwidth.items():
            metrics[f"roofline.{k}.GBps"] = v / 1e9
        metrics["elapsed_s"] = elapsed
        params = {
            "quick": args.quick,
            "cases": ",".join(args.cases),
            "modes": ",".join(args.modes),
            "shapes": ",".join(args.shapes),
            "many_cases": ",".join(args.many_cases),
            "reps": 3 if args.quick else args.reps,
            "clock": args.clock,
            **machine_description(),
        }
        run_id = log_run(
            args.tracking_uri, args.experiment, "step_throughput" + ("-quick" if args.quick else ""),
            params, metrics, {"step_throughput.md": table},
        )
        print(f"MLflow run {run_id} (experiment {args.experiment})", file=sys.stderr)


if __name__ == "__main__":
    main()
