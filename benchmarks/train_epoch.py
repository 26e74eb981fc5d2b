"""End-to-end: one training epoch with our Adam against Keras' Adam, same model and data.

Two workloads: ``digits_mlp`` (the experiments' workload: a 2 x 256 ReLU MLP on scikit-learn's
8 x 8 handwritten digits, 1,797 examples) and ``mlp_2x1000`` (Kingma & Ba's 2 x 1000 ReLU MLP on
784 inputs; synthetic Gaussian inputs and random labels, since only the time matters). Each is
compiled with and without ``jit_compile``. The two optimizers train identical copies of the model
(same initial weights, same batches), and their epochs are timed interleaved (A B B A …, medians,
after one warm-up epoch that traces and compiles).

Usage::

    python benchmarks/train_epoch.py           # ~2-3 minutes on 2 cores
    python benchmarks/train_epoch.py --quick   # smoke run, well under a minute

Prints a markdown table and logs it to MLflow (experiment ``train_epoch``; ``--tracking-uri``,
default ``sqlite:///<cwd>/mlruns/mlflow.db``; ``--no-mlflow`` to skip).
"""

from __future__ import annotations

import argparse
import sys
import time

import _common  # noqa: F401  (sets the environment and sys.path first)
from _common import interleaved, log_run, machine_description, markdown_table

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_adam_variants as kav  # noqa: E402


def digits_data():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y.astype(np.int32)


def synthetic_data(n, features=784, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((n, features), dtype=np.float32),
        rng.integers(0, classes, n).astype(np.int32),
    )


def mlp_builder(hidden):
    try:  # the experiments' definition when the checkout has it
        from experiments.workloads import mlp

        return mlp(hidden)
    except ImportError:

        def build(input_shape, num_classes):
            inputs = keras.Input(input_shape)
            x = keras.layers.Flatten()(inputs)
            for width in hidden:
                x = keras.layers.Dense(width, activation="relu")(x)
            return keras.Model(inputs, keras.layers.Dense(num_classes)(x))

        return build


def workloads(quick):
    n_large = 2000 if quick else 10000
    return {
        # name: (builder, data, batch size)
        "digits_mlp": (mlp_builder((256, 256)), digits_data, 32),
        "mlp_2x1000": (mlp_builder((1000, 1000)), lambda: synthetic_data(n_large), 128),
    }


def make_model(build, x, weights=None):
    keras.utils.set_random_seed(0)
    model = build(x.shape[1:], 10)
    if weights is not None:
        model.set_weights(weights)
    return model


def run(args):
    rows = []
    t0 = time.perf_counter()
    for name, (build, data, batch) in workloads(args.quick).items():
        if name not in args.workloads:
            continue
        x, y = data()
        weights = make_model(build, x).get_weights()
        for jit in (False, True):
            contenders = {}
            for label, make_opt in (("ours", lambda: kav.Adam()), ("keras", keras.optimizers.Adam)):
                model = make_model(build, x, weights)
                model.compile(
                    optimizer=make_opt(),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    jit_compile=jit,
                )

                def epoch(model=model):
                    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)

                contenders[label] = epoch
            timing = interleaved(contenders, reps=args.reps, target_s=0.0, warmup=1)
            steps = -(-len(x) // batch)
            row = {
                "workload": name,
                "jit_compile": jit,
                "steps": steps,
                "ours_s": timing["ours"][0],
                "keras_s": timing["keras"][0],
                # The machine is shared: samples are often bimodal, so the best epochs too.
                "ours_best": min(timing["ours"][1]),
                "keras_best": min(timing["keras"][1]),
            }
            row["ratio"] = row["keras_s"] / row["ours_s"]
            rows.append(row)
            print(
                f"  {name:11s} jit={jit!s:5s} ours {row['ours_s']:.3f} s  keras "
                f"{row['keras_s']:.3f} s  x{row['ratio']:.2f}  [{time.perf_counter() - t0:.0f}s]",
                file=sys.stderr,
            )
    return rows, time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--workloads", default="digits_mlp,mlp_2x1000")
    parser.add_argument("--reps", type=int, default=None, help="epochs timed per contender")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--experiment", default="train_epoch")
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args(argv)
    args.workloads = args.workloads.split(",")
    if args.reps is None:
        args.reps = 3 if args.quick else 7

    rows, elapsed = run(args)
    table = markdown_table(
        ["workload", "jit_compile", "steps/epoch", "ours s/epoch (median)", "Keras s/epoch (median)",
         "ours/Keras speed", "best ours / Keras s"],
        [
            [r["workload"], r["jit_compile"], r["steps"], f"{r['ours_s']:.3f}", f"{r['keras_s']:.3f}",
             f"{r['ratio']:.2f}", f"{r['ours_best']:.3f} / {r['keras_best']:.3f}"]
            for r in rows
        ],
    )
    print(table)
    print(f"({elapsed:.0f} s; load average {machine_description()['machine.loadavg']})")
    if not args.no_mlflow:
        metrics = {}
        for r in rows:
            key = f"{r['workload']}.{'xla' if r['jit_compile'] else 'graph'}"
            metrics[f"{key}.ours_s_per_epoch"] = r["ours_s"]
            metrics[f"{key}.keras_s_per_epoch"] = r["keras_s"]
            metrics[f"{key}.ratio"] = r["ratio"]
            metrics[f"{key}.ours_best_s"] = r["ours_best"]
            metrics[f"{key}.keras_best_s"] = r["keras_best"]
        metrics["elapsed_s"] = elapsed
        params = {"quick": args.quick, "reps": args.reps, "workloads": ",".join(args.workloads),
                  **machine_description()}
        run_id = log_run(args.tracking_uri, args.experiment,
                         "train_epoch" + ("-quick" if args.quick else ""), params, metrics,
                         {"train_epoch.md": table})
        print(f"MLflow run {run_id} (experiment {args.experiment})", file=sys.stderr)


if __name__ == "__main__":
    main()
