"""The durable spool of one run: every write to the tracking store, in order, on local disk first.

Layout of a spool directory (all names start with ``spool``, so it may share a directory such as a
checkpoint dir):

``spool.json``
    ``{"format": 1, "tracking_uri": ..., "run_id": ..., "created": <unix s>}``.
``spool-ops.jsonl``
    One operation per line, append-only, fsynced after each append: ``{"seq": n, "kind": ...}``
    with kind ``batch`` (``metrics`` as ``[key, value, timestamp_ms, step]``, ``params``,
    ``tags``), ``artifact`` (``file`` relative to the spool, ``artifact_path``) or ``terminate``
    (``status``, ``end_time`` ms). A torn last line (a kill during the write, never
    acknowledged) is dropped when the spool is opened.
``spool-delivered.json``
    ``{"seq": n}``: every operation up to ``n`` is in the store (replaced atomically, fsynced).
``spool-files/<seq>/<name>``
    Copies of artifact files, removed once delivered.
``spool-rejected.jsonl``
    Operations the store refused for good (e.g. a param logged again with another value).
``spool.lock``
    Held by the one process that delivers (a :class:`~experiments.tracking.writer.RunWriter` or
    ``python -m experiments.sync``).

Operations are delivered in ``seq`` order; re-delivering one after a crash between "stored" and
"recorded" is harmless: MLflow's metrics table has the primary key (key, timestamp, step,
run_uuid, value, is_nan) and its ``log_batch`` skips rows already present; a param re-logged with
the same value, a tag, an artifact and ``set_terminated`` overwrite with equal content.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import shutil
import threading
import time

META = "spool.json"
OPS = "spool-ops.jsonl"
DELIVERED = "spool-delivered.json"
FILES = "spool-files"
REJECTED = "spool-rejected.jsonl"
LOCK = "spool.lock"
LINKS = "links"
FORMAT = 1


class SpoolError(RuntimeError):
    """A spool directory that cannot be used (another run's, unreadable, or in use)."""


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: str, obj) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path) or ".")


def is_spool(path: str) -> bool:
    return os.path.isfile(os.path.join(path, META))


class Spool:
    """One run's spool in ``directory`` (created if needed).

    ``uri``/``run_id`` are required to create one; an existing spool of another ``run_id`` raises
    :class:`SpoolError` when it still holds undelivered operations (it is replaced otherwise).
    Thread-safe: one thread may :meth:`append` while another delivers and :meth:`mark_delivered`.
    Only undelivered operations are kept in memory.
    """

    def __init__(self, directory: str, uri: str | None = None, run_id: str | None = None):
        self.dir = os.path.abspath(directory)
        self._lock = None
        self._mutex = threading.RLock()
        meta_path = os.path.join(self.dir, META)
        self.meta = None
        if os.path.isfile(meta_path):
            try:
                with open(meta_path) as f:
                    self.meta = json.load(f)
            except (OSError, ValueError) as err:
                raise SpoolError(f"spool {self.dir}: cannot read {META} ({err})") from None
        if self.meta is None:
            if uri is None or run_id is None:
                raise SpoolError(f"{self.dir} holds no tracking spool ({META} missing)")
            os.makedirs(self.dir, exist_ok=True)
            self.meta = {"format": FORMAT, "tracking_uri": uri, "run_id": run_id,
                         "created": time.time()}
            self._reset_files()
            write_json_atomic(meta_path, self.meta)
        ops = self._load_ops()
        self.delivered = self._load_delivered()
        self._pending = collections.deque(op for op in ops if op["seq"] > self.delivered)
        self._last_seq = max([self.delivered] + [op["seq"] for op in ops])
        self._terminated = any(op["kind"] == "terminate" for op in ops)
        if run_id is not None and self.meta["run_id"] != run_id:
            if self._pending:
                raise SpoolError(
                    f"spool {self.dir} holds {len(self._pending)} undelivered operations of "
                    f"run {self.meta['run_id']}: deliver them first (`python -m experiments.sync "
                    f"{self.dir}`)")
            self._reset_files()
            self.meta = {"format": FORMAT, "tracking_uri": uri or self.meta["tracking_uri"],
                         "run_id": run_id, "created": time.time()}
            write_json_atomic(meta_path, self.meta)
            self.delivered = self._last_seq = 0
            self._terminated = False
        self._ops_file = open(os.path.join(self.dir, OPS), "a")

    # ---- reading ------------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.meta["run_id"]

    @property
    def tracking_uri(self) -> str:
        return self.meta["tracking_uri"]

    def _reset_files(self) -> None:
        for name in (OPS, DELIVERED, REJECTED):
            try:
                os.remove(os.path.join(self.dir, name))
            except FileNotFoundError:
                pass
        shutil.rmtree(os.path.join(self.dir, FILES), ignore_errors=True)

    def _load_ops(self) -> list[dict]:
        path = os.path.join(self.dir, OPS)
        if not os.path.exists(path):
            return []
        ops, good = [], 0
        with open(path, "rb") as f:
            data = f.read()
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn last line: never acknowledged
            try:
                op = json.loads(line)
            except ValueError:
                break
            ops.append(op)
            good += len(line)
        if good != len(data):
            with open(path, "r+b") as f:
                f.truncate(good)
                os.fsync(f.fileno())
        return ops

    def _load_delivered(self) -> int:
        try:
            with open(os.path.join(self.dir, DELIVERED)) as f:
                return int(json.load(f)["seq"])
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SpoolError(f"spool {self.dir}: cannot read {DELIVERED} ({err})") from None

    @property
    def next_seq(self) -> int:
        return self._last_seq + 1

    def pending_ops(self, limit: int | None = None) -> list[dict]:
        """The undelivered operations in order (the first ``limit`` of them)."""
        with self._mutex:
            return list(itertools.islice(self._pending, limit))

    def pending_count(self) -> int:
        return len(self._pending)

    def terminated(self) -> bool:
        """True when the run's end (``set_terminated``) was spooled."""
        return self._terminated

    def complete(self) -> bool:
        """True when the run's end was spooled and everything is delivered."""
        return self.terminated() and not self._pending

    # ---- writing ------------------------------------------------------------------------------

    def files_dir(self, seq: int) -> str:
        path = os.path.join(self.dir, FILES, str(seq))
        os.makedirs(path, exist_ok=True)
        return path

    def append(self, ops: list[dict]) -> list[dict]:
        """Give ``ops`` the next sequence numbers, write them and fsync; returns them."""
        with self._mutex:
            seq = self.next_seq
            lines = []
            for op in ops:
                op["seq"] = seq
                seq += 1
                lines.append(json.dumps(op, separators=(",", ":")) + "\n")
            self._ops_file.write("".join(lines))
            self._ops_file.flush()
            os.fsync(self._ops_file.fileno())
            self._last_seq = seq - 1
            self._pending.extend(ops)
            self._terminated |= any(op["kind"] == "terminate" for op in ops)
        return ops

    def mark_delivered(self, seq: int) -> None:
        """Record durably that every operation up to ``seq`` is in the store; drop their files."""
        if seq <= self.delivered:
            return
        write_json_atomic(os.path.join(self.dir, DELIVERED), {"seq": seq})
        done = []
        with self._mutex:
            self.delivered = seq
            while self._pending and self._pending[0]["seq"] <= seq:
                done.append(self._pending.popleft())
        for op in done:
            if op["kind"] == "artifact":
                shutil.rmtree(os.path.join(self.dir, FILES, str(op["seq"])), ignore_errors=True)

    def reject(self, op: dict, reason: str) -> None:
        with open(os.path.join(self.dir, REJECTED), "a") as f:
            f.write(json.dumps({"op": op, "reason": reason}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    # ---- ownership ----------------------------------------------------------------------------

    def acquire(self, timeout: float = 0.0) -> None:
        """Take ``spool.lock`` (one delivering process per spool); :class:`SpoolError` when another
        process holds it for ``timeout`` seconds."""
        import filelock

        lock = filelock.FileLock(os.path.join(self.dir, LOCK))
        try:
            lock.acquire(timeout=timeout)
        except filelock.Timeout:
            raise SpoolError(f"spool {self.dir} is in use by another process (it holds "
                             f"{os.path.join(self.dir, LOCK)})") from None
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def close(self) -> None:
        if not self._ops_file.closed:
            self._ops_file.close()
        self.release()

    def remove(self) -> None:
        """Delete the spool's files (and the directory when nothing else is in it); rejected
        operations, if any, are kept for the user to read."""
        self.close()
        for name in (OPS, DELIVERED, LOCK, META):
            try:
                os.remove(os.path.join(self.dir, name))
            except FileNotFoundError:
                pass
        shutil.rmtree(os.path.join(self.dir, FILES), ignore_errors=True)
        try:
            os.rmdir(self.dir)
        except OSError:
            pass
