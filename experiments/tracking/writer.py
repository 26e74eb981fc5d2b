"""The one MLflow write path of a run: :class:`RunWriter` (a durable spool and one delivery thread).

Training never waits on the tracking server: each ``log_*`` call appends the operation to the
run's spool on local disk (fsynced) and returns; a background thread sends the operations in
order with :class:`mlflow.MlflowClient`, merging metrics into ``log_batch`` calls, and records what
is stored. While the store is unreachable the thread retries with exponential backoff (0.5 s up to
30 s, :mod:`tenacity`) and the operations wait in memory and in the spool; a process killed at any
moment leaves a spool that the next :class:`RunWriter` on the same directory, or
``python -m experiments.sync``, delivers. Each operation reaches the store exactly once (see
:mod:`experiments.tracking.spool` for why a re-send after a crash does not duplicate).

Example::

    writer = RunWriter(uri, run_id, spool_dir=default_spool_dir(uri, run_id))
    writer.log_params({"lr": 0.01})
    writer.log_metrics([("loss", 0.5, 1), ("acc", 0.9, 1)])   # (key, value, step)
    if not writer.finish("FINISHED", timeout=30):
        print("error: " + writer.status_line())              # the spool is kept
    writer.close()
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import os
import shutil
import threading
import time
import uuid

from . import delivery
from .spool import LINKS, Spool
from .store import (
    HTTP_DEFAULTS,
    is_server,
    is_transient,
    open_store,
    resolve_uri,
    sqlite_path,
)

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0
MAX_PARAM_LENGTH = 6000  # MLflow's limit for a param value


@contextlib.contextmanager
def writer_for(target, run_id: str, timeout: float = 60.0):
    """A :class:`RunWriter` for ``run_id``: ``target`` itself when it is one for that run, else a
    one-shot writer for the store of ``target`` (a :class:`RunWriter`, an
    :class:`mlflow.MlflowClient` or a tracking URI) with its own spool, flushed for up to
    ``timeout`` seconds on exit. What the store did not take by then stays in the spool (a
    one-line warning on stderr says where) for ``python -m experiments.sync``."""
    if isinstance(target, RunWriter) and target.run_id == run_id:
        yield target
        return
    uri = target.uri if isinstance(target, RunWriter) else getattr(target, "tracking_uri", target)
    spool_dir = f"{default_spool_dir(uri, run_id)}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    writer = RunWriter(uri, run_id, spool_dir)
    try:
        yield writer
    finally:
        if not writer.flush(timeout):
            delivery._stderr(f"warning: {writer.status_line() or 'not delivered yet'}; run "
                             f"`python -m experiments.sync {writer.spool_dir}` later")
        writer.close()


class _Closing(Exception):
    """Raised in the delivery thread to stop retrying when the writer closes."""


def default_spool_root(uri: str) -> str:
    """Where spools go by default: ``<dir of the .db>/spool`` for a SQLite store, else
    ``<abs cwd>/mlruns/spool``."""
    db = sqlite_path(uri)
    if db is not None:
        return os.path.join(os.path.dirname(db), "spool")
    return os.path.join(os.path.abspath(os.getcwd()), "mlruns", "spool")


def default_spool_dir(uri: str | None, run_id: str) -> str:
    """``<default_spool_root(uri)>/<run_id>`` (absolute)."""
    return os.path.join(default_spool_root(resolve_uri(uri)), run_id)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


class RunWriter:
    """All writes of run ``run_id`` to the store ``uri``, through a durable spool in ``spool_dir``.

    Every ``log_*``/``set_tags`` call returns once the operation is fsynced in the spool (about a
    millisecond; no network); the timestamp of a metric is taken then. ``spool_dir`` may be a
    checkpoint directory (the spool's files all start with ``spool``); if it holds a spool of the
    same run from a killed process, its undelivered operations are delivered first. The spool's
    files are removed once :meth:`finish` has delivered everything.

    Raises :class:`~experiments.tracking.spool.SpoolError` when another process delivers from the
    same ``spool_dir``, or it holds undelivered operations of another run; ``OSError`` when
    ``spool_dir`` is not writable.
    """

    def __init__(self, uri: str, run_id: str, spool_dir: str, warn=None):
        import mlflow

        self.uri = resolve_uri(uri)
        if is_server(self.uri):
            for key, value in HTTP_DEFAULTS.items():
                os.environ.setdefault(key, value)
        elif sqlite_path(self.uri):
            open_store(self.uri)  # local: builds MLflow's store under the lock (no-op if done)
        self.run_id = run_id
        self.spool = Spool(spool_dir, self.uri, run_id)
        self.spool.acquire(timeout=0)
        self.spool_dir = self.spool.dir
        self._link()
        self._client = mlflow.MlflowClient(self.uri)
        self._warn = warn
        self._queue = collections.deque(self.spool.pending_ops())
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._append_lock = threading.Lock()
        self._closing = False
        self._reachable = True
        self._down_since: float | None = None
        self._last_error = ""
        self._thread = threading.Thread(target=self._run, name=f"RunWriter-{run_id[:8]}",
                                        daemon=True)
        self._thread.start()

    def _link(self) -> None:
        """A pointer from the default spool root, so a plain ``python -m experiments.sync``
        finds a spool kept elsewhere (e.g. in a checkpoint dir)."""
        self._link_path = None
        root = default_spool_root(self.uri)
        if os.path.commonpath([root, self.spool_dir]) == root:
            return
        try:
            links = os.path.join(root, LINKS)
            os.makedirs(links, exist_ok=True)
            self._link_path = os.path.join(links, self.run_id)
            with open(self._link_path, "w") as f:
                f.write(self.spool_dir + "\n")
        except OSError:
            pass  # the spool itself is what matters

    # ---- queueing (caller's thread) -----------------------------------------------------------

    def _enqueue(self, ops: list[dict], prepare=None) -> None:
        if not ops:
            return
        with self._append_lock:
            if prepare is not None:
                prepare(self.spool.next_seq)
            self.spool.append(ops)
            with self._cond:
                self._queue.extend(ops)
                self._cond.notify_all()

    def log_metrics(self, triples) -> None:
        """Queue ``(key, value, step)`` triples (timestamp: now). Non-finite values are stored as
        MLflow stores them (NaN, +-inf)."""
        ts = _now_ms()
        metrics = [[str(k), float(v), ts, int(s)] for k, v, s in triples]
        self._enqueue([{"kind": "batch", "metrics": chunk}
                       for chunk in _chunks(metrics, delivery.MAX_METRICS)])

    def log_params(self, params: dict) -> None:
        """Queue params (values as strings, cut to 6,000 characters). Re-logging a param with an
        equal value is fine; another value is refused by the store (reported, kept aside)."""
        items = [(str(k), str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        self._enqueue([{"kind": "batch", "params": dict(chunk)}
                       for chunk in _chunks(items, delivery.MAX_PARAMS)])

    def set_tags(self, tags: dict) -> None:
        """Queue run tags (values as strings)."""
        items = [(str(k), str(v)) for k, v in tags.items()]
        self._enqueue([{"kind": "batch", "tags": dict(chunk)}
                       for chunk in _chunks(items, delivery.MAX_TAGS)])

    def _artifact(self, artifact_file: str, write) -> None:
        name = os.path.basename(artifact_file)
        directory = os.path.dirname(artifact_file) or None
        op = {"kind": "artifact", "artifact_path": directory}

        def prepare(seq):
            target = os.path.join(self.spool.files_dir(seq), name)
            write(target)
            op["file"] = os.path.relpath(target, self.spool_dir)

        self._enqueue([op], prepare)

    def log_artifact(self, local_path: str, artifact_path: str | None = None) -> None:
        """Queue a file to go under ``artifact_path`` of the run (a directory: its files, as
        :meth:`mlflow.MlflowClient.log_artifacts`); it is copied into the spool now, so it may
        change or vanish afterwards."""
        local_path = os.path.abspath(local_path)
        if not os.path.isdir(local_path):
            name = os.path.basename(local_path)
            self._artifact(os.path.join(artifact_path, name) if artifact_path else name,
                           lambda target: shutil.copyfile(local_path, target))
            return
        op = {"kind": "artifact", "artifact_path": artifact_path}

        def prepare(seq):
            target = os.path.join(self.spool.files_dir(seq), "dir")
            shutil.copytree(local_path, target)
            op["file"] = os.path.relpath(target, self.spool_dir)

        self._enqueue([op], prepare)

    def log_text(self, text: str, artifact_file: str) -> None:
        """Queue ``text`` as the artifact ``artifact_file`` (e.g. ``"notes/readme.md"``)."""
        def write(target):
            with open(target, "w", encoding="utf-8") as f:
                f.write(text)
        self._artifact(artifact_file, write)

    def log_dict(self, obj, artifact_file: str) -> None:
        """Queue ``obj`` as JSON (``.json``) or YAML (``.yaml``/``.yml``) artifact, as
        :meth:`mlflow.MlflowClient.log_dict` writes it."""
        if artifact_file.endswith((".yaml", ".yml")):
            import yaml

            text = yaml.safe_dump(obj, default_flow_style=False)
        else:
            text = json.dumps(obj, indent=2)
        self.log_text(text, artifact_file)

    def log_figure(self, fig, artifact_file: str) -> None:
        """Queue a matplotlib figure saved as ``artifact_file`` (format from its extension); the
        figure is saved now and left open."""
        self._artifact(artifact_file, lambda target: fig.savefig(target))

    # ---- delivery (background thread) ---------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _note_failure(self, retry_state) -> None:
        err = retry_state.outcome.exception()
        with self._cond:
            if self._reachable:
                self._down_since = time.monotonic()
            self._reachable = False
            self._last_error = delivery._message(err) if err else ""
            self._cond.notify_all()

    def _deliver_one(self) -> None:
        if self._closing:
            raise _Closing()
        with self._cond:
            ops = list(itertools.islice(self._queue, 2000))
        taken = delivery.deliver_next(self._client, self.spool, ops, self._warn)
        with self._cond:
            for _ in range(taken):
                self._queue.popleft()
            self._reachable, self._down_since = True, None
            self._cond.notify_all()

    def _run(self) -> None:
        import tenacity

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            wait=tenacity.wait_exponential(multiplier=BACKOFF_INITIAL_S, max=BACKOFF_MAX_S),
            stop=lambda state: self._closing,
            sleep=self._sleep,
            before_sleep=self._note_failure,
            reraise=True,
        )
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
            try:
                retrying(self._deliver_one)
            except Exception as err:  # noqa: BLE001 - stopped while failing; the spool keeps it
                with self._cond:
                    self._last_error = delivery._message(err)
                    if self._closing:
                        return
                    # An unexpected error (a bug, a full disk): report once, retry later.
                    self._reachable = False
                    if self._down_since is None:
                        self._down_since = time.monotonic()
                (self._warn or delivery._stderr)(
                    f"warning: delivering run {self.run_id} to {self.uri} failed "
                    f"({self._last_error}); kept in {self.spool_dir}, retrying")
                self._sleep(BACKOFF_MAX_S)

    # ---- state --------------------------------------------------------------------------------

    def pending(self) -> int:
        """Operations queued and not yet in the store."""
        with self._cond:
            return len(self._queue)

    @property
    def reachable(self) -> bool:
        """False since the last delivery attempt failed, until one succeeds."""
        return self._reachable

    def status_line(self) -> str:
        """One line for progress output while the store is unreachable, e.g. ``tracking store
        http://127.0.0.1:5000 unreachable for 42 s; 118 operations pending, spooled in DIR``;
        ``""`` while it answers."""
        with self._cond:
            if self._reachable:
                return ""
            since = self._down_since or time.monotonic()
            return (f"tracking store {self.uri} unreachable for {time.monotonic() - since:.0f} s; "
                    f"{len(self._queue)} operations pending, spooled in {self.spool_dir}")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is in the store (at most ``timeout`` seconds; None:
        no limit). A pending retry is tried at once. True when delivered."""
        with self._cond:
            target = self._queue[-1]["seq"] if self._queue else 0
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue and self._queue[0]["seq"] <= target:
                if not self._thread.is_alive():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(timeout=0.5 if left is None else min(left, 0.5))
        return True

    def finish(self, status: str = "FINISHED", timeout: float | None = None) -> bool:
        """Queue the run's end (``set_terminated(status)``, last) and :meth:`flush`. True: all is
        stored and the spool removed. False: still pending after ``timeout`` s; the spool is kept
        (deliver it with ``python -m experiments.sync`` or a new writer on the same dir)."""
        self._enqueue([{"kind": "terminate", "status": status, "end_time": _now_ms()}])
        if not self.flush(timeout):
            return False
        self.close()
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop the delivery thread (waiting up to ``timeout`` s for a call in flight) and release
        the spool; undelivered operations stay in it, an empty spool is removed. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            if self.spool.pending_count():
                self.spool.close()
            else:
                self.spool.remove()  # nothing left to deliver
                if self._link_path:
                    with contextlib.suppress(OSError):
                        os.remove(self._link_path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self) -> str:  # pragma: no cover
        return f"RunWriter({self.uri!r}, {self.run_id!r}, pending={self.pending()})"

