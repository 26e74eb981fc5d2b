"""Shared pieces of the benchmarks: environment, interleaved timing, tables and MLflow logging.

Timing discipline (the machine is shared and noisy): every figure is the median of several
samples, and the contenders of one comparison are sampled interleaved in one process
(A B, B A, A B, … so that slow drifts hit both alike), each after its own warm-up (tracing and
XLA compilation are not timed).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # `python benchmarks/x.py` from anywhere imports the checkout's packages
    sys.path.insert(0, REPO)


def calibrate(fn, target_s, max_calls=1000):
    """How many calls of ``fn`` (already warm) make one sample of about ``target_s`` seconds."""
    start = time.perf_counter()
    fn()
    one = max(time.perf_counter() - start, 1e-6)
    return int(max(1, min(max_calls, round(target_s / one))))


def interleaved(contenders, reps, target_s, sync=None, warmup=2):
    """Median seconds per call of each contender, sampled interleaved.

    ``contenders`` maps a name to a zero-argument callable (one step). Each is called ``warmup``
    times first (tracing, compilation), then calibrated to ``target_s`` per sample; then ``reps``
    rounds sample each once, the order reversed every other round. ``sync()`` (optional) is
    called after each sample, inside the timing, to wait for pending work.
    Returns {name: (median_s, [samples_s])}.
    """
    names = list(contenders)
    for name in names:
        for _ in range(warmup):
            contenders[name]()
        if sync:
            sync()
    calls = {name: calibrate(contenders[name], target_s) for name in names}
    samples = {name: [] for name in names}
    for rep in range(reps):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            fn, n = contenders[name], calls[name]
            start = time.perf_counter()
            for _ in range(n):
                fn()
            if sync:
                sync()
            samples[name].append((time.perf_counter() - start) / n)
    return {name: (statistics.median(s), s) for name, s in samples.items()}


def markdown_table(headers, rows):
    """A GitHub markdown table; floats are formatted by the caller."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_description():
    import keras
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "machine.cpu": cpu,
        "machine.cores": str(os.cpu_count()),
        "machine.loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def setup_tracking(tracking_uri, experiment):
    """Point MLflow at the store and experiment (``experiments.tracking`` when the checkout has it)."""
    try:
        from experiments import tracking
    except ImportError:
        tracking = None
    if tracking is not None:
        return tracking.setup(tracking_uri, experiment)
    import mlflow

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///" + os.path.join(
        os.getcwd(), "mlruns", "mlflow.db")  # = tracking.default_tracking_uri()
    if uri.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(uri[len("sqlite:///"):]), exist_ok=True)
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        location = None
        if uri.startswith("sqlite:///"):
            location = os.path.join(os.path.dirname(uri[len("sqlite:///"):]), "artifacts", experiment)
        experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
    else:
        experiment_id = found.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def log_run(tracking_uri, experiment, run_name, params, metrics, artifacts, tags=None):
    """One MLflow run: ``params`` (dict), ``metrics`` (dict name -> float, one batch),
    ``artifacts`` (dict file name -> text)."""
    import tempfile

    import mlflow
    from mlflow.entities import Metric, Param, RunTag

    setup_tracking(tracking_uri, experiment)
    try:
        from experiments.tracking import version_tags

        all_tags = version_tags()
    except Exception:  # noqa: BLE001 -- tags are a convenience
        all_tags = {}
    all_tags.update(tags or {})
    with mlflow.start_run(run_name=run_name) as run:
        client = mlflow.MlflowClient()
        now = int(time.time() * 1000)
        entities = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
        param_entities = [Param(k, str(v)[:6000]) for k, v in params.items()]
        tag_entities = [RunTag(k, str(v)) for k, v in all_tags.items()]
        for start in range(0, max(len(entities), 1), 1000):
            client.log_batch(
                run.info.run_id,
                metrics=entities[start:start + 1000],
                params=param_entities if start == 0 else [],
                tags=tag_entities if start == 0 else [],
            )
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in artifacts.items():
                path = os.path.join(tmp, name)
                with open(path, "w") as f:
                    f.write(text)
                mlflow.log_artifact(path)
        return run.info.run_id
