"""A study across a real Dask cluster: a scheduler and two worker processes on 127.0.0.1 (each
started as a command, in its own process group, stopped by its group id) and a real ``mlflow
server`` as the shared tracking store. Two optimizers x one seed x one epoch; the runs are then
read back from the server."""

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("distributed", reason="the cluster extra: pip install '.[cluster]'")

import mlflow  # noqa: E402

from experiments import compare  # noqa: E402
from tests._experiment_helpers import (  # noqa: E402,F401
    PYTHON, digits_data_dir, env, free_port, interrupt_when, mlflow_server)

DASK = os.path.join(os.path.dirname(PYTHON), "dask")


@contextlib.contextmanager
def dask_cluster(root, workers=2, timeout=180.0):
    """``dask scheduler`` + ``workers`` x ``dask worker --nthreads 1`` on 127.0.0.1; yields the
    scheduler address once every worker has joined."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs, logs = [], []

    def start(name, *args):
        log = open(os.path.join(root, f"{name}.log"), "w")
        logs.append(log)
        procs.append(subprocess.Popen([DASK, *args], cwd=root, stdout=log,
                                      stderr=subprocess.STDOUT, env=env(),
                                      start_new_session=True))

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port),
              "--no-dashboard")
        for i in range(workers):
            start(f"worker{i}", "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                  "--name", f"node{i}", "--no-dashboard", "--local-directory",
                  os.path.join(root, f"worker{i}"))
        with Client(address, timeout=f"{int(timeout)}s") as client:
            client.wait_for_workers(workers, timeout=timeout)
        yield address
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for log in logs:
            log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(tracking server URI, scheduler address): one server and one two-node cluster for the
    module's tests."""
    root = tmp_path_factory.mktemp("cluster")
    with mlflow_server(root) as uri, dask_cluster(str(root)) as address:
        yield uri, address


@pytest.mark.slow
def test_a_study_runs_across_two_dask_workers_into_a_tracking_server(
        cluster, digits_data_dir):  # noqa: F811
    uri, address = cluster
    start = time.monotonic()
    result = compare.run_cli(["--optimizers", "adam,sgd", "--seeds", "1", "--epochs", "1",
                              "--cluster", address, "--tracking-uri", uri,
                              "--experiment", "test-cluster", "--data-dir",
                              digits_data_dir, "--log-effective-lr", "0"])
    wall = time.monotonic() - start
    client = mlflow.MlflowClient(uri)
    parent = client.get_run(result.parent_run_id)
    children = client.search_runs([result.experiment_id],
                                  f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    history = {c.info.run_name: client.get_metric_history(c.info.run_id, "val_loss")
               for c in children}
    print(f"cluster study: 2 runs in {wall:.1f} s")
    assert parent.info.status == "FINISHED"
    assert parent.data.params["engine"] == f"dask:{address}"
    assert sorted(c.info.run_name for c in children) == ["Adam-seed0", "SGD-seed0"]
    assert all(c.info.status == "FINISHED" for c in children)
    assert all(len(h) == 1 and h[0].step == 0 for h in history.values())  # epochs from 0
    # Each training ran in a Dask worker process, not here, one on each node.
    workers = {c.data.tags["kav.worker"] for c in children}
    assert len(workers) == 2 and not any(w.endswith(f":{os.getpid()}") for w in workers)
    assert {o.run_id for o in result.outcomes} == {c.info.run_id for c in children}


@pytest.mark.slow
def test_ctrl_c_stops_the_cluster_trainings_and_marks_them_killed(
        cluster, tmp_path, digits_data_dir):  # noqa: F811
    """A real SIGINT to the study's process group while both cluster workers train: the workers'
    runs stop at their next step and are KILLED with every epoch they trained, the parent too,
    and the cluster is free again."""
    uri, address = cluster
    cmd = [sys.executable, "-m", "experiments.compare", "--optimizers", "adam,sgd", "--seeds",
           "1", "--epochs", "1000", "--cluster", address, "--tracking-uri", uri,
           "--experiment", "test-cluster-sigint", "--data-dir", digits_data_dir,
           "--log-effective-lr", "0"]
    client = mlflow.MlflowClient(uri)

    def runs():
        exp = client.get_experiment_by_name("test-cluster-sigint")
        return client.search_runs([exp.experiment_id]) if exp else []

    def both_nodes_training():
        return sum("val_loss" in r.data.metrics for r in runs()
                   if "mlflow.parentRunId" in r.data.tags) >= 2

    proc, output = interrupt_when(cmd, tmp_path, tmp_path / "compare.log", both_nodes_training)
    assert proc.returncode == 130, output[-3000:]
    assert "interrupted" in output, output[-3000:]
    children = [r for r in runs() if "mlflow.parentRunId" in r.data.tags]
    parent = next(r for r in runs() if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "KILLED"
    assert len(children) == 2 and all(c.info.status == "KILLED" for c in children), (
        [(c.info.run_name, c.info.status) for c in children], output[-3000:])
    for child in children:  # every epoch a worker trained before the stop is in the store
        steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, "val_loss"))
        assert steps == list(range(len(steps))) and len(steps) >= 1
    from distributed import Client

    with Client(address, timeout="30s") as dask:  # the workers stopped training: idle again
        deadline = time.monotonic() + 60
        while any(dask.processing().values()):
            assert time.monotonic() < deadline, dask.processing()
            time.sleep(0.5)


def test_cluster_with_a_local_sqlite_store_is_refused_in_one_line(tmp_path, capsys):
    code = compare.main(["--optimizers", "adam", "--seeds", "1", "--epochs", "1", "--cluster",
                         "tcp://127.0.0.1:1", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is a file of this machine" in err
    assert not os.path.exists(tmp_path / "m.db")
