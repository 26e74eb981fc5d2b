"""N processes started together on one NEW SQLite tracking store, repeated: how many succeed, and is
the store readable with every run in it afterwards?

    python benchmarks/store_first_use.py                  # 6 processes x 5 repetitions
    python benchmarks/store_first_use.py --baseline       # the same with plain MlflowClient calls

Each process waits for a common start instant, then opens the store and experiment
(``experiments.tracking.setup``: the first store construction under the ``<db>.lock`` file lock),
creates a run by key (``tracking.create_run``), logs 5 metrics with a ``RunWriter`` and finishes it.
``--baseline`` does what the code did before: ``MlflowClient(uri)`` + ``get/create_experiment`` +
``create_run`` + ``log_batch`` + ``set_terminated``, no lock. Exit status 1 when any process failed
or the store was unreadable (in the default mode).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import sys, time
start, uri, key, spool = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
time.sleep(max(0.0, start - time.time()))
from experiments import tracking
exp = tracking.setup(uri, "first-use")
run_id, _ = tracking.create_run(uri, exp, key, run_name=key)
w = tracking.RunWriter(uri, run_id, spool)
w.log_metrics([("loss", 1.0 / (s + 1), s) for s in range(5)])
assert w.finish(timeout=120), w.status_line()
"""

BASELINE = r"""
import sys, time
start, uri, key, spool = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
time.sleep(max(0.0, start - time.time()))
import mlflow
from mlflow.entities import Metric
client = mlflow.MlflowClient(uri)
exp = client.get_experiment_by_name("first-use")
exp_id = exp.experiment_id if exp else client.create_experiment("first-use")
run = client.create_run(exp_id, run_name=key, tags={"kav.run_key": key})
client.log_batch(run.info.run_id, metrics=[Metric("loss", 1.0 / (s + 1), 0, s) for s in range(5)])
client.set_terminated(run.info.run_id)
"""


def check_store(db: str, procs: int) -> str:
    """What a fresh process reads from the store: 'N runs, M finished, K with 5 metrics' or the
    error it gets."""
    code = (
        "import sys, mlflow\n"
        "c = mlflow.MlflowClient('sqlite:///' + sys.argv[1])\n"
        "e = c.get_experiment_by_name('first-use')\n"
        "runs = c.search_runs([e.experiment_id]) if e else []\n"
        "ok = sum(len(c.get_metric_history(r.info.run_id, 'loss')) == 5 for r in runs)\n"
        "fin = sum(r.info.status == 'FINISHED' for r in runs)\n"
        "print(f'{len(runs)} runs, {fin} finished, {ok} with 5 metrics')\n")
    proc = subprocess.run([sys.executable, "-c", code, db], capture_output=True, text=True,
                          env=child_env(), timeout=300)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"UNREADABLE ({last[:150]})"
    return proc.stdout.strip()


def child_env() -> dict:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=6)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--baseline", action="store_true",
                        help="plain MlflowClient calls, no lock (what the code did before)")
    args = parser.parse_args(argv)
    code = BASELINE if args.baseline else CHILD
    bad = False
    for rep in range(args.reps):
        root = tempfile.mkdtemp(prefix="kav-first-use-")
        try:
            db = os.path.join(root, "store", "mlflow.db")
            os.makedirs(os.path.dirname(db))
            start = time.time() + 4.0
            procs = [subprocess.Popen(
                [sys.executable, "-c", code, str(start), f"sqlite:///{db}", f"p{i}",
                 os.path.join(root, f"spool{i}")], env=child_env(), cwd=root,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for i in range(args.procs)]
            outs = [p.communicate(timeout=600) for p in procs]
            wall = time.time() - start
            ok = sum(p.returncode == 0 for p in procs)
            errors = sorted({(err.strip().splitlines() or ["?"])[-1][:120]
                             for p, (_, err) in zip(procs, outs) if p.returncode != 0})
            store = check_store(db, args.procs)
            print(f"rep {rep + 1}: {ok}/{args.procs} succeeded in {wall:.1f} s; store: {store}"
                  + (f"; errors: {errors}" if errors else ""), flush=True)
            expected = f"{args.procs} runs, {args.procs} finished, {args.procs} with 5 metrics"
            bad |= ok != args.procs or store != expected
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return 1 if bad and not args.baseline else 0


if __name__ == "__main__":
    sys.exit(main())
