"""Delivering spooled operations to the store with :class:`mlflow.MlflowClient` (shared by the
:class:`~experiments.tracking.writer.RunWriter` thread and ``python -m experiments.sync``).

Consecutive ``batch`` operations are merged into one ``log_batch`` call within MLflow's limits
(1000 metrics, 100 params, 100 tags, 1000 entities in all). After each successful call the spool
records the last delivered sequence number, so a crash re-sends at most one call's worth, which
the store absorbs (see :mod:`experiments.tracking.spool`).
"""

from __future__ import annotations

import os
import sys

from .store import is_transient

MAX_METRICS = 1000
MAX_PARAMS = 100
MAX_TAGS = 100
MAX_ENTITIES = 1000


def next_group(ops: list[dict]) -> list[dict]:
    """The longest prefix of ``ops`` that goes to the store in one call."""
    if not ops:
        return []
    if ops[0]["kind"] != "batch":
        return ops[:1]
    group, metrics, params, tags = [], 0, 0, 0
    for op in ops:
        if op["kind"] != "batch":
            break
        m, p, t = len(op.get("metrics", ())), len(op.get("params", {})), len(op.get("tags", {}))
        if group and (metrics + m > MAX_METRICS or params + p > MAX_PARAMS or tags + t > MAX_TAGS
                      or metrics + params + tags + m + p + t > MAX_ENTITIES):
            break
        if group and (set(op.get("params", {})) & {k for g in group for k in g.get("params", {})}):
            break  # the same param twice in one log_batch is refused
        group.append(op)
        metrics, params, tags = metrics + m, params + p, tags + t
    return group


def send(client, run_id: str, spool_dir: str, group: list[dict]) -> None:
    """One store call for ``group`` (raises what MLflow raises)."""
    from mlflow.entities import Metric, Param, RunTag

    first = group[0]
    if first["kind"] == "batch":
        metrics, params, tags = [], {}, {}
        for op in group:
            metrics += [Metric(k, float(v), int(ts), int(step)) for k, v, ts, step in
                        op.get("metrics", ())]
            params.update(op.get("params", {}))
            tags.update(op.get("tags", {}))
        client.log_batch(run_id, metrics=metrics,
                         params=[Param(k, v) for k, v in params.items()],
                         tags=[RunTag(k, v) for k, v in tags.items()])
    elif first["kind"] == "artifact":
        path = os.path.join(spool_dir, first["file"])
        if os.path.isdir(path):
            client.log_artifacts(run_id, path, first.get("artifact_path"))
        else:
            client.log_artifact(run_id, path, first.get("artifact_path"))
    elif first["kind"] == "terminate":
        client.set_terminated(run_id, status=first["status"], end_time=first["end_time"])
    else:
        raise ValueError(f"unknown spooled operation {first['kind']!r}")


def _message(err: BaseException) -> str:
    text = getattr(err, "message", None) or str(err) or type(err).__name__
    return str(text).strip().splitlines()[0][:300] if str(text).strip() else type(err).__name__


def deliver_next(client, spool, ops: list[dict], warn=None) -> int:
    """Deliver the first group of ``ops`` (the spool's pending operations, in order); returns how
    many operations it took. Transient errors propagate (nothing is recorded); an error that a
    retry would repeat makes each operation of the group go alone, and an operation refused alone
    is written to ``spool-rejected.jsonl`` and reported through ``warn(line)``."""
    group = next_group(ops)
    try:
        send(client, spool.run_id, spool.dir, group)
    except Exception as err:  # noqa: BLE001
        if is_transient(err):
            raise
        if len(group) > 1:
            group = group[:1]
            try:
                send(client, spool.run_id, spool.dir, group)
            except Exception as err1:  # noqa: BLE001
                if is_transient(err1):
                    raise
                err = err1
            else:
                spool.mark_delivered(group[-1]["seq"])
                return 1
        spool.reject(group[0], _message(err))
        (warn or _stderr)(f"warning: the tracking store refused a {group[0]['kind']} operation "
                          f"of run {spool.run_id} ({_message(err)}); kept in "
                          f"{os.path.join(spool.dir, 'spool-rejected.jsonl')}")
    spool.mark_delivered(group[-1]["seq"])
    return len(group)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
