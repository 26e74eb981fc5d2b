"""The spool and ``python -m experiments.sync``: a writer SIGKILLed mid-delivery loses nothing and
duplicates nothing; a re-send after a crash between "stored" and "recorded" is absorbed by the
store; a torn last spool line is dropped; the command's exit statuses."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from experiments import tracking
from experiments.tracking import delivery
from experiments.tracking.spool import OPS, Spool
from tests._experiment_helpers import env

N_STEPS = 3000  # x 2 keys: 6000 metrics in 60 operations of 100


def metric_rows(db: str, run_id: str) -> list[tuple]:
    """Every row of MLflow's metrics table for the run (duplicates would show here)."""
    with sqlite3.connect(db) as con:
        return con.execute("select key, step, value, timestamp from metrics where run_uuid = ? "
                           "order by key, step", (run_id,)).fetchall()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One migrated SQLite store for the module (a migration costs seconds); tests use their
    own experiments in it."""
    db = str(tmp_path_factory.mktemp("store") / "mlflow.db")
    tracking.open_store(f"sqlite:///{db}")
    return db


def new_run(db, name):
    uri = f"sqlite:///{db}"
    exp = tracking.setup(uri, name)
    run_id, _ = tracking.create_run(uri, exp, f"key-{name}")
    return uri, run_id


def test_resend_after_crash_between_stored_and_recorded_is_not_duplicated(tmp_path, store):
    import mlflow

    uri, run_id = new_run(store, "resend")
    spool = Spool(str(tmp_path / "spool"), uri, run_id)
    spool.append([{"kind": "batch", "metrics": [["loss", 0.5, 1000, 1], ["loss", 0.25, 1000, 2]],
                   "params": {"lr": "0.1"}, "tags": {"t": "x"}},
                  {"kind": "terminate", "status": "FINISHED", "end_time": 2000}])
    client = mlflow.MlflowClient(uri)
    ops = spool.pending_ops()
    delivery.send(client, run_id, spool.dir, delivery.next_group(ops))  # stored, then "crash"
    spool.close()
    spool = Spool(str(tmp_path / "spool"))
    assert spool.delivered == 0 and len(spool.pending_ops()) == 2  # nothing recorded
    while spool.pending_ops():
        delivery.deliver_next(client, spool, spool.pending_ops())
    assert metric_rows(store, run_id) == [
        ("loss", 1, 0.5, 1000), ("loss", 2, 0.25, 1000)]
    run = client.get_run(run_id)
    assert run.data.params == {"lr": "0.1"} and run.info.status == "FINISHED"
    assert not (tmp_path / "spool" / "spool-rejected.jsonl").exists()


def test_torn_last_line_is_dropped(tmp_path):
    spool = Spool(str(tmp_path / "s"), "sqlite:///x.db", "r1")
    spool.append([{"kind": "batch", "metrics": [["a", 1.0, 1, 1]]}])
    spool.close()
    with open(tmp_path / "s" / OPS, "a") as f:
        f.write('{"seq": 2, "kind": "batch", "metr')  # killed mid-write, never acknowledged
    spool = Spool(str(tmp_path / "s"))
    assert [op["seq"] for op in spool.pending_ops()] == [1] and spool.next_seq == 2
    assert (tmp_path / "s" / OPS).read_text().count("\n") == 1
    spool.close()


def test_a_spool_of_another_run_with_pending_operations_is_refused(tmp_path):
    spool = Spool(str(tmp_path / "s"), "sqlite:///x.db", "run-a")
    spool.append([{"kind": "batch", "tags": {"a": "1"}}])
    spool.close()
    with pytest.raises(tracking.SpoolError, match="undelivered operations of run run-a"):
        Spool(str(tmp_path / "s"), "sqlite:///x.db", "run-b")


WRITER_CHILD = r"""
import sys
from experiments import tracking
uri, run_id, spool_dir, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
w = tracking.RunWriter(uri, run_id, spool_dir)
w.log_params({"lr": 0.1})
for start in range(0, n, 100):
    w.log_metrics([("a", float(s), s) for s in range(start, start + 100)])
    w.log_metrics([("b", 2.0 * s, s) for s in range(start, start + 100)])
w.log_text("done", "notes.txt")
w._enqueue([{"kind": "terminate", "status": "FINISHED", "end_time": 1}])
print("queued", w.pending(), flush=True)
w.flush(None)
print("delivered", flush=True)
"""


@pytest.mark.slow
def test_writer_killed_mid_delivery_then_sync_delivers_everything_once(tmp_path, store):
    uri, run_id = new_run(store, "killed")
    spool_dir = tmp_path / "ckpt"
    proc = subprocess.Popen([sys.executable, "-c", WRITER_CHILD, uri, run_id, str(spool_dir),
                             str(N_STEPS)], cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("queued"), proc.stderr.read()[-2000:]
    time.sleep(0.3)  # some batches stored, most not
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    spool = Spool(str(spool_dir))
    before = len(spool.pending_ops())
    spool.close()
    db = store
    assert 0 < before, "the writer delivered everything before the kill; kill earlier"

    out = subprocess.run([sys.executable, "-m", "experiments.sync", str(tmp_path / "ckpt")],
                         cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"run {run_id}" in out.stdout and "run complete, spool removed" in out.stdout
    rows = [(k, s, v) for k, s, v, _ in metric_rows(db, run_id)]
    assert rows == [("a", s, float(s)) for s in range(N_STEPS)] + [
        ("b", s, 2.0 * s) for s in range(N_STEPS)]  # every value once
    import mlflow

    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"lr": "0.1"}
    assert [a.path for a in client.list_artifacts(run_id)] == ["notes.txt"]
    assert not spool_dir.exists() or not any(p.name.startswith("spool")
                                             for p in spool_dir.iterdir())


@pytest.mark.slow
def test_sync_command_exit_statuses(tmp_path):
    # a spool for a server that is not there: 3, spool kept
    spool = Spool(str(tmp_path / "s"), "http://127.0.0.1:9", "run-x")
    spool.append([{"kind": "batch", "metrics": [["a", 1.0, 1, 1]]}])
    spool.close()
    run = lambda *a: subprocess.run([sys.executable, "-m", "experiments.sync", *a],  # noqa: E731
                                    cwd=tmp_path, env=env(), capture_output=True, text=True,
                                    timeout=120)
    out = run(str(tmp_path / "s"))
    assert out.returncode == 3, (out.stdout, out.stderr)
    assert "run run-x" in out.stdout and "1 remaining" in out.stdout
    assert (tmp_path / "s" / "spool.json").exists()
    out = run(str(tmp_path / "nope"))
    assert out.returncode == 2 and out.stderr.startswith("error: ") and \
        len(out.stderr.strip().splitlines()) == 1
    out = run()  # nothing under ./mlruns/spool
    assert out.returncode == 0 and "nothing to deliver" in out.stdout
    out = run("--help")
    assert out.returncode == 0 and "Exit status" in out.stdout


def test_default_spool_dirs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert tracking.default_spool_dir(f"sqlite:///{tmp_path}/s/m.db", "r1") == \
        f"{tmp_path}/s/spool/r1"
    assert tracking.default_spool_dir("http://127.0.0.1:5000", "r1") == \
        f"{tmp_path}/mlruns/spool/r1"


def test_a_new_writer_delivers_what_a_killed_one_left_first(tmp_path, store):
    """A rerun opens a RunWriter on the same spool dir: the old operations go first, in order."""
    import mlflow

    uri, run_id = new_run(store, "rerun")
    old = Spool(str(tmp_path / "ckpt"), uri, run_id)
    old.append([{"kind": "batch", "metrics": [["loss", 1.0, 1000, 1]], "params": {"lr": "0.1"}}])
    old.close()  # the process died here: nothing delivered
    writer = tracking.RunWriter(uri, run_id, str(tmp_path / "ckpt"))
    assert writer.pending() == 1
    writer.log_metrics([("loss", 0.5, 2)])
    writer.log_params({"lr": 0.1})  # equal value again: fine
    assert writer.finish(timeout=60)
    client = mlflow.MlflowClient(uri)
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [
        (1, 1.0), (2, 0.5)]
    assert client.get_run(run_id).info.status == "FINISHED"
    assert not (tmp_path / "ckpt").exists()  # the spool's files removed, then the empty dir


def test_a_spool_kept_elsewhere_is_found_from_the_default_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = "http://127.0.0.1:9"  # nothing listens there
    writer = tracking.RunWriter(uri, "run-z", str(tmp_path / "ckpt"))
    writer.log_metrics([("a", 1.0, 1)])
    assert writer.flush(timeout=1) is False and not writer.reachable
    assert writer.status_line().startswith(f"tracking store {uri} unreachable for ")
    assert writer.status_line().endswith(f"1 operations pending, spooled in {tmp_path}/ckpt")
    writer.close()
    root = str(tmp_path / "mlruns" / "spool")
    assert tracking.find_spools(root) == [str(tmp_path / "ckpt")]
    Spool(str(tmp_path / "ckpt")).remove()
    assert tracking.find_spools(root) == []
    assert not os.listdir(os.path.join(root, "links"))  # the stale pointer is gone
