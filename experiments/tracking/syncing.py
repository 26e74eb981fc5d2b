"""Delivering left-over spools (runs whose process ended before the store took everything).

:func:`sync` finds spools under a directory (a spool itself, a root such as ``./mlruns/spool``
with one spool per run, or the ``links/`` pointers that writers leave there for spools kept
elsewhere), delivers each in order with the same code as the writer, and removes a spool whose
run is complete. The command line is ``python -m experiments.sync``.
"""

from __future__ import annotations

import dataclasses
import os

from . import delivery
from .spool import LINKS, Spool, SpoolError, is_spool
from .store import TrackingUnavailableError, is_transient, open_store

RETRY_S = 10.0  # per spool: how long a transient error is retried before giving up for now


@dataclasses.dataclass
class SpoolResult:
    """What syncing one spool did. ``remaining`` > 0 with ``error`` set: the store could not take
    everything (unreachable, or the spool in use by a running process)."""

    spool_dir: str
    run_id: str
    tracking_uri: str
    delivered: int
    remaining: int
    complete: bool  # the run's end is stored (the spool is removed whenever nothing remains)
    error: str = ""

    def line(self) -> str:
        head = f"run {self.run_id} ({self.tracking_uri}): delivered {self.delivered}"
        if self.error:
            return f"{head}, {self.remaining} remaining in {self.spool_dir}: {self.error}"
        if self.complete:
            return f"{head}; run complete, spool removed"
        return (f"{head}; spool removed; the run has not ended (its process was stopped): "
                "resume it to finish it")


def find_spools(path: str) -> list[str]:
    """Spool directories at or under ``path`` (following ``links/<run_id>`` pointer files)."""
    path = os.path.abspath(path)
    if is_spool(path):
        return [path]
    found = []
    for root, dirs, files in os.walk(path):
        if "spool.json" in files:
            found.append(root)
            dirs[:] = []
            continue
        if os.path.basename(root) == LINKS:
            for name in sorted(files):
                try:
                    with open(os.path.join(root, name)) as f:
                        target = f.read().strip()
                except OSError:
                    continue
                if target and is_spool(target):
                    found.append(os.path.abspath(target))
                else:  # its spool was delivered and removed: a stale pointer
                    try:
                        os.remove(os.path.join(root, name))
                    except OSError:
                        pass
        dirs.sort()
    return sorted(dict.fromkeys(found))


def sync_spool(spool_dir: str, tracking_uri: str | None = None,
               retry_s: float = RETRY_S) -> SpoolResult:
    """Deliver one spool to ``tracking_uri`` (default: the URI it was written for)."""
    import mlflow
    import tenacity

    try:
        spool = Spool(spool_dir)
    except SpoolError as err:
        return SpoolResult(spool_dir, "?", tracking_uri or "?", 0, 0, False, str(err))
    uri = tracking_uri or spool.tracking_uri
    result = SpoolResult(spool.dir, spool.run_id, uri, 0, spool.pending_count(), False)
    try:
        spool.acquire(timeout=0)
    except SpoolError as err:
        spool.close()
        result.error = str(err)
        return result
    try:
        try:
            uri = open_store(uri)
        except TrackingUnavailableError as err:
            result.error = str(err)
            return result
        client = mlflow.MlflowClient(uri)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            wait=tenacity.wait_exponential(multiplier=0.5, max=5),
            stop=tenacity.stop_after_delay(retry_s), reraise=True)
        while spool.pending_count():
            try:
                result.delivered += retrying(delivery.deliver_next, client, spool,
                                             spool.pending_ops(2000))
            except Exception as err:  # noqa: BLE001
                result.error = (f"the store did not take it ({delivery._message(err)}); run "
                                "`python -m experiments.sync` again when it answers")
                break
        result.remaining = spool.pending_count()
        if not result.remaining:
            result.complete = spool.terminated()
            spool.remove()
        return result
    finally:
        spool.close()


def sync(path: str, tracking_uri: str | None = None) -> tuple[int, int]:
    """Deliver every spool at or under ``path``; returns ``(delivered, remaining)`` operations."""
    results = [sync_spool(d, tracking_uri) for d in find_spools(path)]
    return sum(r.delivered for r in results), sum(r.remaining for r in results)
