"""Screenshots of the MLflow UI as a user sees it after ``kav train``: look at them.

Trains two short runs with ``kav train`` (AMSGrad and Keras' Adam on ``digits_logreg``) in a new
directory, so that they land in its default store (``mlruns/mlflow.db``), starts ``kav ui`` there
with no flags but the port, and saves PNGs of what a browser shows, taken with headless Debian
``chromium`` (``apt-get install -y chromium``):

* ``experiments.png``: the home page (the experiments list);
* ``experiment-bare.png``: ``#/experiments/<id>`` as MLflow 3.17 opens it by default: its GenAI
  view (an empty traces overview), whatever the experiment's ``mlflow.experimentKind`` tag says;
* ``experiment.png``: the same with ``?workflowType=machine_learning`` (the links ``kav ui``
  prints): the table of training runs;
* ``runs.png``: the runs table (``runs-wide.png``: 3200 pixels wide, in case columns are off
  screen); ``charts.png``: its chart view (one chart per metric, x = step =
  the epoch from 0);
* ``run.png``: one run's overview (datasets, tags, metrics; params further down);
* ``compare.png``: MLflow's Compare view of the two runs (parallel coordinates of params such as
  ``optimizer`` and ``optimizer_<key>`` against metrics).

What they showed (MLflow 3.17.2): the bare experiment URL opens the GenAI overview (empty traces
charts, a "Detect Issues" pop-up); with the query, the "Runs" table lists both runs by name
(``amsgrad-lr0.05-seed0``, ``keras_adam-lr0.05-seed0``) with datasets, duration and model, but no
param or metric column until one is added (the table's "+" / "Columns"; even at 3200 pixels wide);
the chart view plots ``accuracy``, ``epoch_time``, ``examples_per_second``, ``learning_rate``,
``loss``, ``train_loss_step``... for both runs at steps 0, 1, 2; a run's page lists its 8
metrics; Compare draws parallel coordinates of ``optimizer``, ``optimizer_<key>`` params against
metrics. An "MLflow Assistant" panel takes the right quarter of every page.

    python benchmarks/ui_screenshots.py --out /tmp/ui_shots [--data-dir DIR] [--work DIR]

``--work DIR`` reuses a directory whose store already has runs (nothing is trained). Prints the
PNG paths; the UI process and chromium are stopped (by process group) before it exits. About a
minute on 2 loaded cores (two trainings ~20 s each, the UI start ~10 s, 5 screenshots ~5 s each).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

# MLflow 3.17's UI opens every experiment in its GenAI view (traces) unless the URL says
# workflowType=machine_learning (or the sidebar's "Model training" switch was used in that browser).
ML_WORKFLOW = "machine_learning"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--virtual-time-budget=15000"]
WIDE = {"runs-wide": "3200,1000"}  # the whole runs table


def _env() -> dict:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)  # the directory's default store
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def kav(*args, cwd) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "experiments.cli", *map(str, args)], cwd=cwd,
                          env=_env(), capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        sys.exit(f"error: kav {' '.join(map(str, args))} failed:\n{proc.stderr[-3000:]}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.load(r)


@contextlib.contextmanager
def kav_ui(cwd: str, port: int, timeout: float = 180.0):
    """``kav ui --port PORT`` in ``cwd`` until the block ends (its process group is killed)."""
    log = open(os.path.join(cwd, "ui.log"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "experiments.cli", "ui", "--port", str(port)],
                            cwd=cwd, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                sys.exit(f"error: kav ui exited:\n{open(log.name).read()[-3000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            if time.monotonic() > deadline:
                sys.exit(f"error: kav ui did not answer in {timeout:.0f} s")
            time.sleep(0.5)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("error: no chromium found: apt-get install -y chromium")


def screenshot(browser: str, url: str, path: str, size: str = "1600,1000") -> None:
    """Save what headless chromium shows at ``url`` (``size`` = "width,height") as the PNG
    ``path``."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = subprocess.Popen([browser, *CHROMIUM_FLAGS, f"--window-size={size}",
                                 f"--user-data-dir={profile}",
                                 f"--screenshot={path}", url],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # leftover renderer processes
    if not os.path.isfile(path):
        sys.exit(f"error: chromium saved no screenshot of {url}:\n{out.decode()[-2000:]}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="/tmp/ui_shots", help="where the PNGs go (default %(default)s)")
    p.add_argument("--work", default=None,
                   help="a directory whose default store already has kav-train runs")
    p.add_argument("--data-dir", default=None, help="TFDS data dir (default: TFDS's)")
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    browser = chromium()
    work = args.work or tempfile.mkdtemp(prefix="kav-ui-")
    if args.work is None:
        data = ["--data-dir", args.data_dir] if args.data_dir else []
        for optimizer, lr in (("amsgrad", 0.05), ("keras_adam", 0.05)):
            start = time.monotonic()
            out = kav("train", "--optimizer", optimizer, "--learning-rate", lr, "--workload",
                      "digits_logreg", "--epochs", args.epochs, *data, cwd=work)
            print(f"kav train --optimizer {optimizer}: {time.monotonic() - start:.0f} s; "
                  f"{out.stdout.strip().splitlines()[-1]}", flush=True)
    with kav_ui(work, free_port()) as base:
        [experiment] = [e for e in api(base, "experiments/search", {"max_results": 100})[
            "experiments"] if e["name"] == "kav-train"]
        eid = experiment["experiment_id"]
        runs = api(base, "runs/search", {"experiment_ids": [eid]})["runs"]
        ids = [r["info"]["run_id"] for r in runs]
        compare = urllib.parse.quote(json.dumps(ids))
        ml = f"workflowType={ML_WORKFLOW}"
        pages = {
            "experiments": f"{base}/#/experiments",
            "experiment-bare": f"{base}/#/experiments/{eid}",  # the UI's default: GenAI
            "experiment": f"{base}/#/experiments/{eid}?{ml}",
            "runs": f"{base}/#/experiments/{eid}/runs?{ml}",
            "runs-wide": f"{base}/#/experiments/{eid}/runs?{ml}",
            "charts": f"{base}/#/experiments/{eid}/runs?{ml}&compareRunsMode=CHART",
            "run": f"{base}/#/experiments/{eid}/runs/{ids[0]}?{ml}",
            "compare": f"{base}/#/compare-runs?runs={compare}&experiments=%5B%22{eid}%22%5D&{ml}",
        }
        for name, url in pages.items():
            path = os.path.join(args.out, f"{name}.png")
            start = time.monotonic()
            screenshot(browser, url, path, WIDE.get(name, "1600,1000"))
            print(f"{path}  ({url}, {time.monotonic() - start:.0f} s)", flush=True)
    print(f"store: {work}/mlruns/mlflow.db ({len(ids)} runs in kav-train)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
