"""Versions of the stack for run tags, and the legacy direct metric logging helper."""

from __future__ import annotations

import os
import time

MAX_METRICS_PER_BATCH = 1000  # the MLflow REST API's limit for one log-batch request


def log_metrics(client, run_id: str, metrics, synchronous: bool = True) -> list:
    """Log ``metrics`` -- (key, value, step) triples -- in as few ``log_batch`` calls as possible.

    One ``log_metric`` call over HTTP costs tens of milliseconds; one batch of up to 1000 values
    costs about the same, so everything goes through here. With ``synchronous=False`` the batches
    go through MLflow's background queue and the returned operations must be waited for
    (``op.wait()``, which also raises a logging error); synchronous calls return [].
    """
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    entities = [Metric(key, float(value), now, int(step)) for key, value, step in metrics]
    operations = []
    for start in range(0, len(entities), MAX_METRICS_PER_BATCH):
        op = client.log_batch(
            run_id, metrics=entities[start:start + MAX_METRICS_PER_BATCH], synchronous=synchronous
        )
        if op is not None and not synchronous:
            operations.append(op)
    return operations


def version_tags() -> dict[str, str]:
    """The provenance of a run: ``mlflow.start_run``'s context tags (``mlflow.user``,
    ``mlflow.source.name`` / ``type``: the UI's "Created by" and "Source"), the versions of the
    package and its stack, and the git commit of the checkout (when any)."""
    import subprocess

    import keras
    import mlflow
    import tensorflow as tf
    from mlflow.tracking.context.registry import resolve_tags

    import keras_adam_variants as kav

    tags = {
        **resolve_tags(),
        "kav.version": kav.__version__,
        "keras.version": keras.__version__,
        "tensorflow.version": tf.__version__,
        "mlflow.version": mlflow.__version__,
    }
    repo = os.path.dirname(os.path.dirname(os.path.abspath(kav.__file__)))
    try:
        commit = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        tags["git.commit"] = commit
        tags["git.dirty"] = str(bool(dirty)).lower()
    except (OSError, subprocess.SubprocessError):
        pass
    return tags
