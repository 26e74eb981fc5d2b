"""Where runs are logged (the MLflow tracking store), and logging that stays cheap.

``setup(tracking_uri, experiment)`` points MLflow at a store and an experiment and returns the
experiment id. The store is, in order:

1. ``tracking_uri`` when given (``--tracking-uri``);
2. the ``MLFLOW_TRACKING_URI`` environment variable;
3. ``sqlite:///<abs cwd>/mlflow.db`` -- MLflow's own default (``sqlite:///mlflow.db``), made
   absolute: a plain ``mlflow ui``, ``mlflow.get_run`` or ``mlflow.keras.autolog`` run from the
   same directory sees the same runs.

With a SQLite store, a new experiment's artifacts go to ``<dir of the .db>/mlartifacts/<experiment>``
(an absolute path, so runs started from any directory keep their artifacts together). With a
tracking server (``http://``/``https://``) the server decides, and the server is checked first:
one ``GET /health`` with a short timeout, so a server that cannot be reached fails the run before
training starts (:class:`TrackingUnavailableError`), instead of MLflow's minutes of retries.
"""

from __future__ import annotations

import os
import re
import time
import urllib.error
import urllib.request
from urllib.parse import urlparse

HEALTH_TIMEOUT_S = 5.0
MAX_METRICS_PER_BATCH = 1000  # the MLflow REST API's limit for one log-batch request


class TrackingUnavailableError(RuntimeError):
    """The tracking store cannot be reached or opened."""


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<abs cwd>/mlflow.db`` (MLflow's own
    default store, ``sqlite:///mlflow.db``, made absolute)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return "sqlite:///" + os.path.join(os.path.abspath(os.getcwd()), "mlflow.db")


def resolve_uri(tracking_uri: str | None) -> str:
    """The tracking URI a run uses: ``tracking_uri`` or :func:`default_tracking_uri`."""
    return tracking_uri or default_tracking_uri()


def sqlite_path(uri: str) -> str | None:
    """The absolute database path of a ``sqlite:///`` URI, else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return os.path.abspath(uri[len("sqlite:///"):])


def check_server(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Raise :class:`TrackingUnavailableError` unless ``<uri>/health`` answers within ``timeout``."""
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status != 200:
                raise TrackingUnavailableError(
                    f"MLflow tracking server {uri} answered {response.status} on {url}")
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingUnavailableError(
            f"cannot reach the MLflow tracking server {uri} ({url}: {reason}). Start it (e.g. "
            "`mlflow server --host 127.0.0.1 --port 5000`), or pass another --tracking-uri "
            "(or unset MLFLOW_TRACKING_URI to use the local SQLite store ./mlflow.db)."
        ) from None


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: next to a SQLite database, else the store's default."""
    db = sqlite_path(uri)
    if db is None:
        return None
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment).strip("_") or "experiment"
    return os.path.join(os.path.dirname(db), "mlartifacts", safe)


def setup(tracking_uri: str | None, experiment: str) -> str:
    """Point MLflow at the store and at ``experiment`` (created if new); return its id.

    Fails fast with :class:`TrackingUnavailableError` when a server cannot be reached or a
    database cannot be opened.
    """
    import mlflow

    uri = resolve_uri(tracking_uri)
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        check_server(uri)
    db = sqlite_path(uri)
    if db is not None:
        os.makedirs(os.path.dirname(db), exist_ok=True)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    try:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            location = artifact_location(uri, experiment)
            try:
                experiment_id = client.create_experiment(experiment, artifact_location=location)
            except mlflow.exceptions.MlflowException:
                # Created meanwhile by a concurrent run.
                found = client.get_experiment_by_name(experiment)
                if found is None:
                    raise
                experiment_id = found.experiment_id
        else:
            experiment_id = found.experiment_id
        mlflow.set_experiment(experiment_id=experiment_id)
    except mlflow.exceptions.MlflowException as err:
        raise TrackingUnavailableError(f"MLflow tracking store {uri}: {err.message}") from None
    return experiment_id


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
    """Versions of the package and its stack, and the git commit of the checkout (when any)."""
    import subprocess

    import keras
    import mlflow
    import tensorflow as tf

    import keras_adam_variants as kav

    tags = {
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
