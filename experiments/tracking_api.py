"""The tracking calls the runner makes, in one place.

Each name comes from :mod:`experiments.tracking` when that module provides it (the tracking
layer: store opening under a lock, the non-blocking :class:`RunWriter` with its durable spool).
Until then a minimal synchronous stand-in with the same signatures is used, so the runner and
its tests work either way. The stand-in has no spool: an outage blocks it as MLflow's own
retries do. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from experiments import tracking as _tracking

TrackingUnavailableError = _tracking.TrackingUnavailableError
resolve_uri = _tracking.resolve_uri
version_tags = _tracking.version_tags
RUN_KEY_TAG = "kav.run_key"


def _provided(name: str):
    return getattr(_tracking, name, None)


# ---- stand-ins -------------------------------------------------------------------------------

def _open_store(uri: str | None) -> str:
    uri = resolve_uri(uri)
    parsed = urlparse(uri)
    scheme = parsed.scheme
    if scheme in ("http", "https"):
        _tracking.check_server(uri)
        return uri
    db = _tracking.sqlite_path(uri)
    if db is not None:
        if os.path.isdir(db):
            raise TrackingUnavailableError(f"tracking store {uri}: {db} is a directory, not a "
                                           "SQLite database file; pass sqlite:///<dir>/mlflow.db")
        if os.path.exists(db):
            with open(db, "rb") as f:
                header = f.read(16)
            if header and header != b"SQLite format 3\x00":
                raise TrackingUnavailableError(
                    f"tracking store {uri}: {db} is not a SQLite database; pass another "
                    "--tracking-uri (or move the file away)")
            if not os.access(db, os.W_OK) or not os.access(os.path.dirname(db), os.W_OK):
                raise TrackingUnavailableError(f"tracking store {uri}: {db} is read-only; pass "
                                               "a writable --tracking-uri")
        return uri
    raise TrackingUnavailableError(
        f"tracking store {uri}: unsupported here (use sqlite:///<path>/mlflow.db or an "
        "http(s):// MLflow server)")


def _create_run(uri, experiment_id, run_key, *, run_name=None, parent_run_id=None, tags=None):
    import mlflow

    client = mlflow.MlflowClient(uri)
    found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'",
                               run_view_type=mlflow.entities.ViewType.ALL, max_results=1)
    if found:
        return found[0].info.run_id, False
    all_tags = {**(tags or {}), RUN_KEY_TAG: run_key}
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id, run_name=run_name, tags=all_tags)
    return run.info.run_id, True


def _default_spool_dir(uri: str, run_id: str) -> str:
    from experiments.checkpoints import store_dir

    return os.path.join(store_dir(uri), "spool", run_id)


class _RunWriter:
    """Synchronous stand-in for ``experiments.tracking.RunWriter`` (no spool)."""

    def __init__(self, uri, run_id, spool_dir):
        import mlflow

        self.client = mlflow.MlflowClient(uri)
        self.run_id, self.spool_dir = run_id, spool_dir
        self.reachable = True

    def log_metrics(self, metrics):
        if metrics:
            _tracking.log_metrics(self.client, self.run_id, list(metrics))

    def log_params(self, params):
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def set_tags(self, tags):
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path, artifact_path=None):
        self.client.log_artifact(self.run_id, path, artifact_path)

    def log_dict(self, obj, file):
        self.client.log_dict(self.run_id, obj, file)

    def log_figure(self, fig, file):
        self.client.log_figure(self.run_id, fig, file)

    def log_text(self, text, file):
        self.client.log_text(self.run_id, text, file)

    def pending(self):
        return 0

    def status_line(self):
        return ""

    def flush(self, timeout=None):
        return True

    def finish(self, status="FINISHED", timeout=None):
        self.client.set_terminated(self.run_id, status)
        return True

    def close(self):
        pass


open_store = _provided("open_store") or _open_store
create_run = _provided("create_run") or _create_run
RunWriter = _provided("RunWriter") or _RunWriter
default_spool_dir = _provided("default_spool_dir") or _default_spool_dir
HAS_SPOOL = _provided("RunWriter") is not None


def setup(uri: str, experiment: str) -> str:
    """The experiment id of ``experiment`` in the store ``uri`` (created if new)."""
    return _tracking.setup(uri, experiment)
