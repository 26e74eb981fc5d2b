"""Opening a tracking store safely and fast, experiments, and runs that cannot be orphaned.

Supported stores (``--tracking-uri`` / ``MLFLOW_TRACKING_URI``):

* ``sqlite:///<path>.db`` -- a local SQLite file (the default: ``sqlite:///<abs cwd>/mlruns/mlflow.db``);
* ``http://host:port`` / ``https://...`` -- an MLflow tracking server (``mlflow server``);
* ``postgresql+psycopg://user:pw@host/db`` (and MLflow's other SQLAlchemy databases, ``mysql``,
  ``mssql``) -- needs the database's Python driver (``pip install 'psycopg[binary]'``).

``file://`` stores and bare directories are refused: MLflow 3 deprecates them (it raises unless
``MLFLOW_ALLOW_FILE_STORE=true``).

Why a lock: MLflow's :class:`~mlflow.store.tracking.sqlalchemy_store.SqlAlchemyStore` creates and
migrates the schema (``mlflow.store.db.utils._initialize_tables`` = ``create_all`` + alembic
``upgrade heads``) in *every* process that constructs it while any table is missing, with no lock.
Processes opening a new or older-schema SQLite file at once race (``duplicate column name: step``,
``table _alembic_tmp_tags already exists``, ``Online migration expected to match one row``) and can
leave the file unreadable. MLflow caches the constructed store per process and URI
(``TrackingStoreRegistry._get_store_with_resolved_uri``, an ``lru_cache``), so :func:`open_store`
constructs it once per process under a cross-process :class:`filelock.FileLock` (``<db>.lock``,
next to the database): the first process migrates, the others then find every table present.
Measured (benchmarks/store_first_use.py, 6 processes started together on a new file, 2 loaded
cores): with the lock 6/6 succeeded in each of 5 repetitions; without it 1/6, twice.

Why fast: for a SQLite file MLflow retries ``create_engine``/``inspect`` 10 times with exponential
sleeps (``create_sqlalchemy_engine_with_retry``: 0.1 * (2**n - 1) s, about 100 s in all) when the
file cannot be opened, e.g. a missing database in a read-only directory. :func:`open_store` checks
the path itself first (directory writable, file an SQLite database and writable) and raises
:class:`TrackingUnavailableError` with one line within seconds.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import threading
from urllib.parse import urlparse

HEALTH_TIMEOUT_S = 5.0
LOCK_TIMEOUT_S = 300.0  # a migration of a new store takes seconds; a busy machine, more
CREATE_RUN_RETRY_S = 30.0
SQLITE_HEADER = b"SQLite format 3\x00"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
RUN_KEY_TAG = "kav.run_key"
DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
SUPPORTED = ("sqlite:///<path>.db, http(s)://<server>, postgresql+psycopg://<user>@<host>/<db>")

# Short HTTP timeouts for every MLflow REST call of this process (set by open_store for a server
# unless the user set them): durability comes from the spool (RunWriter), not from minutes of
# retries inside one call. MLflow's defaults are 7 retries, backoff factor 2, 120 s timeout.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}

_opened: set[str] = set()
_opened_lock = threading.Lock()


class TrackingUnavailableError(RuntimeError):
    """The tracking store cannot be reached or opened. The message is one line that names the
    URI or path and says what to do."""


# ---- URIs -------------------------------------------------------------------------------------

def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<abs cwd>/mlruns/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return "sqlite:///" + os.path.join(os.path.abspath(os.getcwd()), "mlruns", "mlflow.db")


def resolve_uri(tracking_uri: str | None) -> str:
    """The tracking URI a run uses: ``tracking_uri`` or :func:`default_tracking_uri`. A relative
    ``sqlite:///`` path is made absolute (so the same store is meant from any directory)."""
    uri = tracking_uri or default_tracking_uri()
    db = sqlite_path(uri)
    if db is not None and db != ":memory:":
        return "sqlite:///" + db
    return uri


def sqlite_path(uri: str) -> str | None:
    """The absolute database path of a ``sqlite:///`` URI, else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return os.path.abspath(uri[len("sqlite:///"):])


def scheme_of(uri: str) -> str:
    """The URI's scheme without a driver (``postgresql+psycopg`` -> ``postgresql``)."""
    return urlparse(uri).scheme.split("+", 1)[0].lower()


def is_server(uri: str) -> bool:
    return scheme_of(uri) in ("http", "https")


def redact(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (for messages)."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", uri)


def check_server(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Raise :class:`TrackingUnavailableError` unless ``<uri>/health`` answers 200 within
    ``timeout`` seconds."""
    import urllib.error
    import urllib.request

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
            "(or unset MLFLOW_TRACKING_URI to use the local SQLite store ./mlruns/mlflow.db)."
        ) from None


def server_reachable(uri: str, timeout: float = 2.0) -> bool:
    """True when ``<uri>/health`` answers 200 within ``timeout`` seconds."""
    try:
        check_server(uri, timeout)
        return True
    except TrackingUnavailableError:
        return False


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: ``<dir of the .db>/artifacts/<experiment>`` for a
    SQLite store (absolute), else None (the store's default)."""
    db = sqlite_path(uri)
    if db is None:
        return None
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment).strip("_") or "experiment"
    return os.path.join(os.path.dirname(db), "artifacts", safe)


# ---- pre-flight checks ------------------------------------------------------------------------

def _why(err: OSError) -> str:
    if err.errno == errno.EROFS:
        return "read-only file system"
    return err.strerror or str(err)


def check_writable_dir(path: str, what: str, uri: str) -> None:
    """Create ``path`` if needed and write a temporary file in it (``os.access`` says yes for root
    on a read-only mount of some kinds; a real write does not lie)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise TrackingUnavailableError(
            f"{what} {path} (of tracking store {redact(uri)}) is not a directory: "
            "remove it or choose another location")
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        raise TrackingUnavailableError(
            f"{what} {path} (of tracking store {redact(uri)}) is not writable ({_why(err)}): "
            "make it writable or pass another --tracking-uri") from None


def _check_sqlite(uri: str) -> str:
    db = sqlite_path(uri)
    if os.path.isdir(db):
        raise TrackingUnavailableError(
            f"SQLite tracking store {db} is a directory, not a database file: pass "
            f"--tracking-uri sqlite:///{os.path.join(db, 'mlflow.db')} (a file path)")
    check_writable_dir(os.path.dirname(db), "directory", uri)
    if os.path.exists(db):
        try:
            with open(db, "rb") as f:
                header = f.read(len(SQLITE_HEADER))
        except OSError as err:
            raise TrackingUnavailableError(
                f"cannot read SQLite tracking store {db} ({_why(err)})") from None
        if header and header != SQLITE_HEADER:
            raise TrackingUnavailableError(
                f"{db} is not an SQLite database (tracking store {uri}): pass the path of an "
                "MLflow .db file, or a new path to create one")
        try:
            os.close(os.open(db, os.O_RDWR))
        except OSError as err:
            raise TrackingUnavailableError(
                f"SQLite tracking store {db} is not writable ({_why(err)}): make it writable "
                "or pass another --tracking-uri") from None
    return db


def _check_db_driver(uri: str) -> None:
    import sqlalchemy

    try:
        url = sqlalchemy.engine.make_url(uri)
        dialect = url.get_dialect()
        dialect.import_dbapi()
    except ImportError as err:
        missing = getattr(err, "name", None) or str(err)
        if scheme_of(uri) == "postgresql":
            driver = getattr(locals().get("dialect"), "driver", "psycopg")
            how = ("pip install 'psycopg[binary]'" if driver == "psycopg" else
                   "pip install 'psycopg[binary]'` and write the URI as "
                   "`postgresql+psycopg://user:password@host:port/database")
            raise TrackingUnavailableError(
                f"tracking store {redact(uri)} needs the PostgreSQL driver {driver} ({missing} "
                f"cannot be imported): `{how}` (MLflow uses the psycopg 3 driver through "
                "postgresql+psycopg://)") from None
        raise TrackingUnavailableError(
            f"tracking store {redact(uri)} needs its database driver ({missing} is not "
            f"installed): install it, or use one of {SUPPORTED}") from None
    except Exception as err:  # noqa: BLE001 - sqlalchemy's ArgumentError and friends
        raise TrackingUnavailableError(
            f"invalid database URI {redact(uri)} ({type(err).__name__}: {err}); "
            f"supported: {SUPPORTED}") from None


def _check_db_connects(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """One connection with a short timeout (MLflow retries for about 100 s)."""
    import sqlalchemy

    args = {"connect_timeout": int(timeout)} if scheme_of(uri) in ("postgresql", "mysql") else {}
    engine = sqlalchemy.create_engine(uri, connect_args=args, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect():
            pass
    except Exception as err:  # noqa: BLE001
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrackingUnavailableError(
            f"cannot connect to tracking database {redact(uri)} ({first}): start it or pass "
            "another --tracking-uri") from None
    finally:
        engine.dispose()


def check_uri(uri: str) -> None:
    """Fast checks (no MLflow import) of a resolved URI; :class:`TrackingUnavailableError` on
    failure. Servers: ``/health``. SQLite: the directory writable, the file an SQLite database and
    writable. Other databases: the driver importable and one connection."""
    scheme = scheme_of(uri)
    if scheme in ("http", "https"):
        check_server(uri)
    elif scheme == "sqlite":
        if not uri.startswith("sqlite:///") or uri in ("sqlite:///", "sqlite:///:memory:"):
            raise TrackingUnavailableError(
                f"tracking URI {uri} names no database file: use sqlite:///<path>/mlflow.db")
        _check_sqlite(uri)
    elif scheme in DB_SCHEMES:
        _check_db_driver(uri)
        _check_db_connects(uri)
    elif scheme in ("", "file"):
        raise TrackingUnavailableError(
            f"tracking URI {uri} is a file store, which MLflow 3 no longer supports by default: "
            f"use sqlite:///{os.path.abspath(urlparse(uri).path or uri)}/mlflow.db (supported: "
            f"{SUPPORTED})")
    else:
        raise TrackingUnavailableError(
            f"tracking URI {redact(uri)}: scheme {scheme}:// is not supported; use one of "
            f"{SUPPORTED}")


# ---- opening ----------------------------------------------------------------------------------

def store_lock_path(uri: str) -> str | None:
    """The cross-process lock taken around the first construction of a database store:
    ``<db>.lock`` next to a SQLite file; for another database (PostgreSQL ...) a file in the
    temporary directory named by a hash of the URI (this guards the processes of one machine,
    as MLflow's own ``_safe_initialize_tables`` does); None for a server (it migrates itself)."""
    db = sqlite_path(uri)
    if db is not None:
        return db + ".lock"
    if scheme_of(uri) in DB_SCHEMES:
        import hashlib

        digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
        return os.path.join(tempfile.gettempdir(), f"kav-tracking-store-{digest}.lock")
    return None


def _construct(uri: str) -> None:
    """Build MLflow's tracking and model-registry stores for ``uri`` (cached by MLflow per process
    and URI), migrating the schema when tables are missing."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    tracking_utils._get_store(uri)
    if scheme_of(uri) in DB_SCHEMES:
        registry_utils._get_store(uri)


def _schema_error(uri: str, err: Exception) -> TrackingUnavailableError:
    text = getattr(err, "message", None) or str(err)
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    if "out-of-date database schema" in text:
        return TrackingUnavailableError(
            f"tracking store {redact(uri)} has an older MLflow schema: back it up, then run "
            f"`mlflow db upgrade {redact(uri)}`")
    return TrackingUnavailableError(f"cannot open tracking store {redact(uri)} ({first})")


def open_store(uri: str | None) -> str:
    """Check and open the tracking store ``uri`` (None: :func:`default_tracking_uri`); return the
    resolved URI.

    Safe to call from any number of processes at once on the same new or older-schema SQLite file:
    the first construction of MLflow's store in each process (which creates or migrates the
    schema) runs under a file lock ``<db>.lock``. For a server, MLflow's HTTP retry settings are
    shortened for this process (:data:`HTTP_DEFAULTS`, unless already set in the environment).

    Raises :class:`TrackingUnavailableError` (one line naming the URI or path and what to do)
    within seconds for: an unreachable server; a read-only directory or database file; a path
    that is a directory or not an SQLite database; ``file://`` or an unknown scheme; a database
    URI whose driver is missing (``postgresql://`` without psycopg) or that does not connect; an
    older schema MLflow does not migrate by itself.
    """
    uri = resolve_uri(uri)
    check_uri(uri)
    if is_server(uri):
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
    with _opened_lock:
        if uri in _opened:
            return uri
        lock_path = store_lock_path(uri)
        try:
            if lock_path is not None:
                import filelock

                try:
                    with filelock.FileLock(lock_path, timeout=LOCK_TIMEOUT_S):
                        _construct(uri)
                except filelock.Timeout:
                    raise TrackingUnavailableError(
                        f"tracking store {uri}: another process has held {lock_path} for "
                        f"{LOCK_TIMEOUT_S:.0f} s while creating the schema; if none is running, "
                        "delete the lock file") from None
            else:
                _construct(uri)
        except TrackingUnavailableError:
            raise
        except Exception as err:  # noqa: BLE001 - MlflowException, sqlalchemy errors
            raise _schema_error(uri, err) from None
        _opened.add(uri)
    return uri


# ---- experiments and runs ---------------------------------------------------------------------

def _local_artifact_dir(location: str | None) -> str | None:
    if not location:
        return None
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return parsed.path
    if parsed.scheme == "" and os.path.isabs(location):
        return location
    return None


def setup(tracking_uri: str | None, experiment: str) -> str:
    """Open the store (:func:`open_store`), get or create ``experiment`` and return its id.

    A new experiment of a SQLite store keeps its artifacts at :func:`artifact_location`
    (absolute). Every experiment gets the tag ``mlflow.experimentKind =
    custom_model_development`` when it lacks one, so MLflow's UI opens on the runs table. Also
    points ``mlflow`` (the fluent API) at the store and experiment. Raises
    :class:`TrackingUnavailableError` as :func:`open_store` does, and when the experiment's local
    artifact directory is not writable.
    """
    import mlflow

    uri = open_store(tracking_uri)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    location = artifact_location(uri, experiment)
    try:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            check_artifacts = _local_artifact_dir(location)
            if check_artifacts:
                check_writable_dir(check_artifacts, "artifact directory", uri)
            try:
                experiment_id = client.create_experiment(
                    experiment, artifact_location=location,
                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
            except mlflow.exceptions.MlflowException:
                found = client.get_experiment_by_name(experiment)  # created meanwhile
                if found is None:
                    raise
        if found is not None:
            experiment_id = found.experiment_id
            if found.lifecycle_stage == "deleted":
                raise TrackingUnavailableError(
                    f"experiment {experiment!r} of tracking store {redact(uri)} is deleted: "
                    f"restore it (`mlflow experiments restore --experiment-id {experiment_id}`) "
                    "or choose another --experiment")
            existing = _local_artifact_dir(found.artifact_location)
            if existing:
                check_writable_dir(existing, "artifact directory", uri)
            if EXPERIMENT_KIND_TAG not in (found.tags or {}):
                client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        mlflow.set_experiment(experiment_id=experiment_id)
    except mlflow.exceptions.MlflowException as err:
        first = (err.message or "").strip().splitlines()[0] if err.message else str(err)
        raise TrackingUnavailableError(
            f"MLflow tracking store {redact(uri)}: {first}") from None
    return experiment_id


def is_transient(err: BaseException) -> bool:
    """True for errors that may pass when the store answers again (connection refused, timeouts,
    5xx, a locked database); False for errors that a retry repeats (invalid values, missing run)."""
    from mlflow.exceptions import MlflowException

    if isinstance(err, (OSError, TimeoutError, ConnectionError)):
        return True
    if isinstance(err, MlflowException):
        permanent = {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "INVALID_STATE",
                     "RESOURCE_ALREADY_EXISTS", "PERMISSION_DENIED", "UNAUTHENTICATED",
                     "BAD_REQUEST", "ENDPOINT_NOT_FOUND", "FEATURE_DISABLED"}
        if err.error_code in permanent:
            text = str(err.message)
            # SQLAlchemy errors from a busy SQLite file come back as BAD_REQUEST at times.
            return "database is locked" in text or "unable to open" in text
        return True
    try:
        import requests

        if isinstance(err, requests.exceptions.RequestException):
            return True
    except ImportError:  # pragma: no cover
        pass
    return False


def _retrying(seconds: float):
    import tenacity

    return tenacity.Retrying(
        stop=tenacity.stop_after_delay(seconds),
        wait=tenacity.wait_exponential(multiplier=0.5, max=5),
        retry=tenacity.retry_if_exception(is_transient),
        reraise=True,
    )


def find_run(uri: str, experiment_id: str, run_key: str):
    """The active (not deleted) run of ``experiment_id`` tagged ``kav.run_key == run_key``, or
    None (the oldest when several)."""
    import mlflow

    if "'" in run_key or "\\" in run_key:
        raise ValueError(f"run_key must not contain quotes or backslashes, got {run_key!r}")
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'",
                              run_view_type=mlflow.entities.ViewType.ACTIVE_ONLY,
                              order_by=["attributes.start_time ASC"], max_results=10)
    return runs[0] if runs else None


def create_run(uri: str, experiment_id: str, run_key: str, *, run_name: str | None = None,
               parent_run_id: str | None = None, tags: dict | None = None,
               retry_s: float = CREATE_RUN_RETRY_S) -> tuple[str, bool]:
    """The run of ``experiment_id`` for ``run_key``: ``(run_id, created)``.

    If an active run carries the tag ``kav.run_key = run_key`` it is returned (``created`` False);
    otherwise a run is created with that tag (plus ``tags``, ``run_name`` and
    ``mlflow.parentRunId`` when ``parent_run_id``). The caller writes ``run_key`` somewhere durable
    (its checkpoint dir) *before* calling, so a kill between creation and its first state write
    finds the same run again instead of orphaning it. Transient store errors are retried for
    ``retry_s`` seconds (exponential backoff, :mod:`tenacity`), then
    :class:`TrackingUnavailableError`. Two processes creating the same key at the same instant
    may create two runs (the key is meant to be one process's own).
    """
    import mlflow
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    def attempt():
        found = find_run(uri, experiment_id, run_key)
        if found is not None:
            return found.info.run_id, False
        # The context tags mlflow.start_run sets (mlflow.user, mlflow.source.name/type, git
        # commit): the UI's "Created by" and "Source" columns, as for the user's own runs.
        all_tags = {**resolve_tags(), **(tags or {}), RUN_KEY_TAG: run_key}
        if parent_run_id:
            all_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
        if run_name:
            all_tags[MLFLOW_RUN_NAME] = run_name
        client = mlflow.MlflowClient(uri)
        run = client.create_run(experiment_id, tags={k: str(v) for k, v in all_tags.items()},
                                run_name=run_name)
        return run.info.run_id, True

    try:
        return _retrying(retry_s)(attempt)
    except Exception as err:  # noqa: BLE001
        message = getattr(err, "message", None) or str(err)
        first = message.strip().splitlines()[0] if message.strip() else type(err).__name__
        raise TrackingUnavailableError(
            f"cannot create the run in tracking store {redact(uri)} ({first}); retried for "
            f"{retry_s:.0f} s: check the store and run the command again") from None
