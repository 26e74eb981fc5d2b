"""What a resumable run keeps on disk, and the checks that it is whole and its own.

A checkpoint directory holds::

    run_key.json       the run's key and identity, written BEFORE the MLflow run is created
    state.json         run id, run key, epochs done, global step, history, the model file and
                       its SHA-256 and size, finished flag (written last, atomically)
    epoch-NNNNN.keras  the model and optimizer state after epoch NNNNN
    .lock              held by the process using the directory (filelock)

Every file is written under a temporary name and renamed into place, so a kill at any moment
leaves the previous consistent pair; temporaries of a killed process are removed on the next
start. A ``state.json`` or model file that is empty, truncated, altered, from another run or
inconsistent with the command is refused (:class:`~experiments.config.ConfigError`) instead of
resumed from. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid

from . import faults
from .config import ConfigError, identity_hash

STATE_FILE = "state.json"
KEY_FILE = "run_key.json"
LOCK_FILE = ".lock"
STATE_VERSION = 2


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "experiment"


def store_dir(tracking_uri: str) -> str:
    """The local directory of a store: the SQLite database's directory, else ``./mlruns``."""
    if tracking_uri.startswith("sqlite:///"):
        return os.path.dirname(os.path.abspath(tracking_uri[len("sqlite:///"):]))
    return os.path.abspath("mlruns")


def default_dir(tracking_uri: str, experiment: str, ident: dict) -> str:
    """``<store dir>/checkpoints/<experiment>/<identity hash>``: where a run without
    ``--checkpoint-dir`` keeps its checkpoints (so the same command finds them after a kill)."""
    return os.path.join(store_dir(tracking_uri), "checkpoints", safe_name(experiment),
                        identity_hash(ident))


def require_writable_dir(path: str, what: str, hint: str, create: bool = True) -> str:
    """Make sure ``path`` is a directory this process can write (by writing a probe file).

    Raises :class:`ConfigError` naming ``what`` (e.g. ``--checkpoint-dir``), the path, the reason
    and ``hint`` (what to do). Returns the absolute path.
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{what} {path} is a file, not a directory; {hint}")
    try:
        if create:
            os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-probe-"):
            pass
    except OSError as err:
        raise ConfigError(f"{what} {path} is not writable ({err.strerror or err}); {hint}") from None
    return path


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


class Checkpoints:
    """One checkpoint directory, opened for one process (locked until :meth:`close`).

    ``Checkpoints(directory)`` creates the directory if needed, proves it writable, takes its
    lock (another process using it: :class:`ConfigError`) and removes what a killed process left
    half-written. ``what`` names the directory in messages (``--checkpoint-dir``).
    """

    def __init__(self, directory: str, what: str = "--checkpoint-dir"):
        from filelock import FileLock, Timeout

        self.what = what
        self.directory = require_writable_dir(
            directory, what, "pass a writable directory as --checkpoint-dir")
        self.path = os.path.join(self.directory, STATE_FILE)
        self.key_path = os.path.join(self.directory, KEY_FILE)
        self._lock = FileLock(os.path.join(self.directory, LOCK_FILE))
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise ConfigError(
                f"{what} {self.directory} is in use by another training process (lock "
                f"{self._lock.lock_file}); wait for it to end, or use another --checkpoint-dir"
            ) from None
        self.clean_stale()

    # ---- housekeeping --------------------------------------------------------------------------

    def clean_stale(self) -> list[str]:
        """Remove temporaries left by a killed process; return their names."""
        removed = []
        for pattern in (f"{STATE_FILE}.tmp-*", f"{KEY_FILE}.tmp-*", "partial-*", ".write-probe-*"):
            for path in glob.glob(os.path.join(self.directory, pattern)):
                with contextlib.suppress(OSError):
                    os.remove(path)
                    removed.append(os.path.basename(path))
        return removed

    def close(self) -> None:
        """Release the directory's lock."""
        self._lock.release()

    def remove(self) -> None:
        """Delete the whole directory (a finished run's default checkpoint)."""
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # ---- the run key ---------------------------------------------------------------------------

    def _bad(self, path: str, why: str) -> ConfigError:
        return ConfigError(
            f"checkpoint file {path} {why}; it cannot be resumed from. Delete {self.directory} "
            f"to start a new run (or restore the file from a backup)")

    def run_key(self, ident: dict) -> str | None:
        """The key in ``run_key.json``, None if there is none; :class:`ConfigError` if the file is
        unreadable or was written for other settings."""
        if not os.path.exists(self.key_path):
            return None
        try:
            with open(self.key_path) as f:
                saved = json.load(f)
            key, saved_ident = saved["run_key"], saved["identity"]
            if not isinstance(key, str) or not isinstance(saved_ident, dict):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError):
            raise self._bad(self.key_path, "is empty, truncated or not a run key") from None
        if saved_ident != ident:
            diff = "; ".join(f"{k}: {saved_ident.get(k)!r} there, {ident.get(k)!r} here"
                             for k in sorted(set(ident) | set(saved_ident))
                             if ident.get(k) != saved_ident.get(k))
            raise ConfigError(
                f"{self.what} {self.directory} belongs to a run with other settings ({diff}); "
                "rerun with the same settings to resume, or use another --checkpoint-dir")
        return key

    def new_run_key(self, ident: dict) -> str:
        """Write a new ``run_key.json`` (identity hash + a random nonce) and return the key."""
        key = f"{identity_hash(ident)}-{uuid.uuid4().hex[:16]}"
        tmp = f"{self.key_path}.tmp-{os.getpid()}"
        _fsync_write(tmp, json.dumps({"run_key": key, "identity": ident}, indent=1))
        os.replace(tmp, self.key_path)
        return key

    # ---- the state -----------------------------------------------------------------------------

    def read(self, epochs: int) -> dict | None:
        """The validated state, or None when there is none.

        Refuses (:class:`ConfigError`) a state that is empty, truncated, not a run's state, at an
        epoch beyond ``epochs``, inconsistent with its history, or whose model file is missing,
        truncated or not the one it recorded (another run's, or altered).
        """
        if not os.path.exists(self.path):
            return None
        try:
            with open(self.path) as f:
                text = f.read()
        except OSError as err:
            raise self._bad(self.path, f"cannot be read ({err.strerror})") from None
        if not text.strip():
            raise self._bad(self.path, "is empty")
        try:
            state = json.loads(text)
        except ValueError:
            raise self._bad(self.path, "is truncated or not JSON") from None
        required = {"run_id": str, "run_key": str, "epoch": int, "global_step": int,
                    "history": dict, "finished": bool}
        missing = [k for k, kind in required.items()
                   if not isinstance(state, dict) or not isinstance(state.get(k), kind)]
        if missing:
            raise self._bad(self.path, f"is not a run's state (missing or malformed: "
                                       f"{', '.join(missing)})")
        epoch = state["epoch"]
        if not 0 <= epoch <= epochs:
            raise self._bad(self.path, f"says epoch {epoch} of {epochs} (--epochs {epochs})")
        lengths = {k: len(v) for k, v in state["history"].items() if isinstance(v, list)}
        if any(n != epoch for n in lengths.values()) or len(lengths) != len(state["history"]):
            raise self._bad(self.path, f"says epoch {epoch} but its history has {lengths} values")
        if state["finished"] and epoch != epochs:
            raise self._bad(self.path, f"says finished at epoch {epoch} of {epochs}")
        if epoch > 0:
            self._check_model(state)
        return state

    def _check_model(self, state: dict) -> None:
        name, digest, size = state.get("model"), state.get("model_sha256"), state.get("model_bytes")
        if not (isinstance(name, str) and isinstance(digest, str) and isinstance(size, int)):
            raise self._bad(self.path, "names no model file with its checksum")
        path = self.model_path(name)
        if os.path.basename(name) != name or not os.path.isfile(path):
            raise self._bad(path, f"is missing (state.json names it for epoch {state['epoch']})")
        actual = os.path.getsize(path)
        if actual < size:
            raise self._bad(path, f"is truncated ({actual} of the {size} bytes state.json "
                                  "recorded)")
        if actual != size:
            raise self._bad(path, f"is not the model state.json recorded ({actual} bytes, not "
                                  f"{size}: a model of another run, or altered)")
        if sha256_file(path) != digest:
            raise self._bad(path, "does not match the SHA-256 recorded in state.json (a model of "
                                  "another run, or altered)")

    def write(self, state: dict) -> None:
        """Write ``state`` atomically (temporary file, fsync, rename)."""
        state = {**state, "version": STATE_VERSION}
        tmp = f"{self.path}.tmp-{os.getpid()}"
        _fsync_write(tmp, json.dumps(state, indent=1))
        faults.point("state_write")
        os.replace(tmp, self.path)

    # ---- models --------------------------------------------------------------------------------

    def save_model(self, model, epoch: int) -> dict:
        """Save ``model`` (with its optimizer) for ``epoch``; return the state entries that
        record it: ``model`` (file name), ``model_sha256`` and ``model_bytes``."""
        name = f"epoch-{epoch:05d}.keras"
        tmp = os.path.join(self.directory, f"partial-{os.getpid()}-{name}")
        model.save(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        entry = {"model": name, "model_sha256": sha256_file(tmp),
                 "model_bytes": os.path.getsize(tmp)}
        faults.point("checkpoint_write")
        os.replace(tmp, self.model_path(name))
        return entry

    def model_path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def prune(self, keep: str) -> None:
        """Remove model files other than ``keep`` (older epochs, leftovers of a crash)."""
        for entry in os.listdir(self.directory):
            if entry.endswith(".keras") and entry != keep:
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.directory, entry))
