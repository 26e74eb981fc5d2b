"""The project's main job against the loop a user would write instead, in one run.

    python benchmarks/main_job.py                       # compare with --workers 1 and the default
    python benchmarks/main_job.py --workers 1,2 --out main_job.json
    python benchmarks/main_job.py --epochs 1 --seeds 1 --optimizers adam,sgd   # a quick look

Both sides train the same trainings: every optimizer of the package at its default learning
rate plus Keras' Adam (14 today), seeds 0..2, the 2 x 256 ReLU MLP on scikit-learn's digits
(the same stratified 80/20 split), 10 epochs of batch 128, each fit a nested MLflow run under
one parent, into a fresh SQLite store each:

* **plain loop** -- one Python process: ``mlflow.keras.autolog(log_models=False)``, then for
  each optimizer and seed ``keras.utils.set_random_seed``, build, compile (Keras' defaults),
  ``model.fit(x, y, validation_data=...)`` inside ``mlflow.start_run(nested=True)``;
* **compare** -- ``python -m experiments.compare`` with ``--workers N`` for each N asked
  (default: 1 and the machine's default, the core count), same epochs and seeds.

Each side is a fresh process timed from start to exit (imports and store creation included);
the TFDS copy of digits is prepared once beforehand (a one-time cost of the first compare on a
machine, not of every run). Prints the wall times and the ratios compare / plain loop, and
writes them as JSON with ``--out``. One sample each: on a shared machine, run it when quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PLAIN_LOOP = textwrap.dedent('''
    import os, sys, time
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras, mlflow
    import keras_adam_variants as kav
    from experiments.digits_builder import split_indices
    from sklearn.datasets import load_digits

    uri, epochs, seeds, names = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32").reshape(-1, 64)
    y = digits.target.astype("int64")
    train, test = split_indices()
    optimizers = [(n, kav.get(n)) for n in kav.names()] + [("keras_adam", keras.optimizers.Adam)]
    if names != "all":
        wanted = [s.strip().lower() for s in names.split(",")]
        optimizers = [(n, c) for n, c in optimizers if n.lower() in wanted]
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("plain-loop")
    mlflow.keras.autolog(log_models=False)
    with mlflow.start_run(run_name="plain-loop"):
        for name, cls in optimizers:
            for seed in range(seeds):
                with mlflow.start_run(run_name=f"{name}-seed{seed}", nested=True):
                    keras.utils.set_random_seed(seed)
                    model = keras.Sequential([
                        keras.Input((64,)),
                        keras.layers.Dense(256, activation="relu"),
                        keras.layers.Dense(256, activation="relu"),
                        keras.layers.Dense(10)])
                    model.compile(optimizer=cls(),
                                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                                  metrics=["accuracy"])
                    model.fit(x[train], y[train], batch_size=128, epochs=epochs,
                              validation_data=(x[test], y[test]), verbose=0)
    print(len(optimizers) * seeds)
''')


def env() -> dict:
    e = dict(os.environ)
    e.pop("MLFLOW_TRACKING_URI", None)
    e["PYTHONPATH"] = REPO + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    e["KERAS_BACKEND"] = "tensorflow"
    return e


def timed(cmd: list[str], log_path: str) -> float:
    """Seconds from start to exit of ``cmd`` (output to ``log_path``); raises if it fails."""
    with open(log_path, "w") as log:
        start = time.monotonic()
        code = subprocess.run(cmd, cwd=os.path.dirname(log_path), env=env(), stdout=log,
                              stderr=subprocess.STDOUT).returncode
        wall = time.monotonic() - start
    if code != 0:
        with open(log_path) as f:
            tail = f.read()[-2000:]
        raise SystemExit(f"error: {' '.join(cmd[:4])} ... exited {code}; end of its log "
                         f"{log_path}:\n{tail}")
    return wall


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/main_job.py", description=__doc__.split(
        "\n\n")[0])
    p.add_argument("--workers", default=None,
                   help="comma list of compare --workers values (default: 1 and the core count)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--optimizers", default="all")
    p.add_argument("--compare-args", default="",
                   help="extra arguments for compare, e.g. '--log-effective-lr 0'")
    p.add_argument("--dir", default=None, help="work directory (default: a new temporary one)")
    p.add_argument("--out", default=None, help="write the figures as JSON here")
    args = p.parse_args(argv)
    workers = ([int(w) for w in args.workers.split(",")] if args.workers
               else sorted({1, os.cpu_count() or 1}))
    root = os.path.abspath(args.dir or tempfile.mkdtemp(prefix="kav-main-job-"))
    os.makedirs(root, exist_ok=True)
    data_dir = os.path.join(root, "tfds")
    subprocess.run([sys.executable, "-c", "from experiments import datasets; "
                    f"datasets.load('digits', data_dir={data_dir!r})"],
                   env=env(), check=True, capture_output=True)

    figures = {"epochs": args.epochs, "seeds": args.seeds, "optimizers": args.optimizers,
               "cores": os.cpu_count(), "loadavg_before": os.getloadavg()[0]}
    plain_dir = os.path.join(root, "plain")
    os.makedirs(plain_dir)
    script = os.path.join(plain_dir, "plain_loop.py")
    with open(script, "w") as f:
        f.write(PLAIN_LOOP)
    print("plain loop ...", file=sys.stderr, flush=True)
    plain = timed([sys.executable, script, f"sqlite:///{plain_dir}/mlflow.db", str(args.epochs),
                   str(args.seeds), args.optimizers], os.path.join(plain_dir, "log.txt"))
    figures["plain_loop_s"] = round(plain, 1)
    for n in workers:
        work = os.path.join(root, f"compare-w{n}")
        os.makedirs(work)
        print(f"compare --workers {n} ...", file=sys.stderr, flush=True)
        wall = timed([sys.executable, "-m", "experiments.compare", "--workers", str(n),
                      "--epochs", str(args.epochs), "--seeds", str(args.seeds),
                      "--optimizers", args.optimizers, "--data-dir", data_dir,
                      "--tracking-uri", f"sqlite:///{work}/mlflow.db", *args.compare_args.split()],
                     os.path.join(work, "log.txt"))
        figures[f"compare_w{n}_s"] = round(wall, 1)
        figures[f"ratio_w{n}"] = round(wall / plain, 3)
    figures["loadavg_after"] = os.getloadavg()[0]
    print(f"plain loop {plain:.1f} s")
    for n in workers:
        print(f"compare --workers {n}: {figures[f'compare_w{n}_s']:.1f} s = "
              f"{figures[f'ratio_w{n}']:.2f} x the plain loop")
    print(f"load average {figures['loadavg_before']:.1f} before, "
          f"{figures['loadavg_after']:.1f} after ({figures['cores']} cores); logs in {root}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
