"""Where runs are logged (the MLflow tracking store), and the one way a run writes to it.

Store (:mod:`experiments.tracking.store`)
    ``resolve_uri(uri)`` / ``default_tracking_uri()`` -- ``uri``, else ``MLFLOW_TRACKING_URI``, else
    ``sqlite:///<abs cwd>/mlruns/mlflow.db``. ``open_store(uri) -> str`` checks and opens it (under a
    cross-process lock ``<db>.lock`` on first use in a process, so parallel processes may open a
    new or older-schema SQLite file), failing within seconds with :class:`TrackingUnavailableError`
    (one line: the URI or path and what to do). ``setup(uri, experiment) -> experiment_id`` opens,
    gets or creates the experiment (artifacts at ``<db dir>/artifacts/<experiment>`` for SQLite,
    tag ``mlflow.experimentKind = custom_model_development``). ``create_run(uri, experiment_id,
    run_key, *, run_name, parent_run_id, tags) -> (run_id, created)`` finds the run tagged
    ``kav.run_key = run_key`` or creates it (retried about 30 s). Also ``check_server``,
    ``sqlite_path``, ``artifact_location``.

Writing (:mod:`experiments.tracking.writer`)
    ``RunWriter(uri, run_id, spool_dir)``: ``log_metrics([(key, value, step)])``, ``log_params``,
    ``set_tags``, ``log_artifact``, ``log_dict``, ``log_text``, ``log_figure`` return at once after
    the operation is in a durable spool (``spool_dir``); one background thread delivers in order,
    exactly once in the store, retrying while the store is unreachable. ``pending()``,
    ``reachable``, ``status_line()``, ``flush(timeout) -> bool``, ``finish(status, timeout) ->
    bool``, ``close()``. ``default_spool_dir(uri, run_id)``. ``writer_for(writer_or_client, run_id)``
    (a context manager the study helpers of :mod:`experiments.report` use).

Sync (:mod:`experiments.tracking.syncing`)
    ``sync(dir_or_root, tracking_uri=None) -> (delivered, remaining)`` delivers left-over spools;
    the command is ``python -m experiments.sync`` (exit 0 all delivered, 3 some remain).

Legacy helpers: ``log_metrics(client, run_id, triples)`` (direct batched logging) and
``version_tags()``.
"""

from .store import (  # noqa: F401
    HEALTH_TIMEOUT_S,
    RUN_KEY_TAG,
    TrackingUnavailableError,
    artifact_location,
    check_server,
    create_run,
    default_tracking_uri,
    find_run,
    open_store,
    resolve_uri,
    setup,
    sqlite_path,
)
from .spool import SpoolError  # noqa: F401
from .writer import (  # noqa: F401
    RunWriter,
    default_spool_dir,
    default_spool_root,
    writer_for,
)
from .syncing import find_spools, sync, sync_spool  # noqa: F401
from .versions import MAX_METRICS_PER_BATCH, log_metrics, version_tags  # noqa: F401
