"""The runner through a tracking outage, with a real ``mlflow server`` killed by PID and started
again on the same port and store: training goes on, checkpoints go on, the progress lines say the
server is unreachable, and the run ends FINISHED with every epoch once. A server still down at
the end: one line, exit 3, the spool kept; the same command later delivers it."""

import json
import os
import subprocess
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

from tests import _experiment_helpers as helpers  # noqa: E402
from tests._experiment_helpers import (  # noqa: E402,F401
    assert_one_error, digits_data_dir, env, metric_steps, run_train, runs_of, train_cmd)

pytestmark = pytest.mark.slow

EPOCHS = 8


def _args(data_dir, uri, ckpt, *extra):
    return ["--optimizer", "adam", "--workload", "digits_mlp", "--epochs", EPOCHS,
            "--batch-size", 32, "--log-every", 5, "--no-log-model", "--data-dir", data_dir,
            "--tracking-uri", uri, "--experiment", "outage", "--checkpoint-dir", ckpt, *extra]


def _assert_finished_with_every_epoch(uri):
    from experiments.config import EPOCH_KEYS

    [run] = runs_of(uri, "outage")
    assert run.info.status == "FINISHED"
    for key in EPOCH_KEYS:
        assert metric_steps(uri, run.info.run_id, key) == list(range(EPOCHS)), key  # from 0
    steps = metric_steps(uri, run.info.run_id, "train_loss_step")
    assert steps == sorted(set(steps)) and steps[-1] == EPOCHS * 45 // 5 * 5
    return run


def _wait_for_epoch(state_path, epoch, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if state_path.exists():
            try:
                if json.loads(state_path.read_text())["epoch"] >= epoch:
                    return
            except (ValueError, KeyError):
                pass
        time.sleep(0.05)
    raise AssertionError(f"epoch {epoch} never checkpointed (exit {proc.poll()})")


def test_server_down_for_20_s_after_epoch_2(tmp_path, digits_data_dir):
    server = helpers.MlflowServer(tmp_path / "server").start()
    try:
        ckpt = tmp_path / "ckpt"
        proc = subprocess.Popen(
            train_cmd(*_args(digits_data_dir, server.uri, ckpt, "--finish-timeout", 400)),
            cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        try:
            _wait_for_epoch(ckpt / "state.json", 2, proc)
            server.kill()
            down = time.monotonic()
            time.sleep(20)
            server.start()
            print(f"server down for {time.monotonic() - down:.1f} s")
            out, err = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
        assert proc.returncode == 0, err[-3000:]
        state = json.loads((ckpt / "state.json").read_text())
        assert state["finished"] and state["epoch"] == EPOCHS
        run = _assert_finished_with_every_epoch(server.uri)
        assert out.strip().splitlines()[-2:] == [  # the run, then where its UI is
            f"run_id {run.info.run_id}",
            f"MLflow UI: open {server.uri} in a browser (the tracking server serves the "
            "MLflow UI)"]
        assert "error:" not in err
    finally:
        server.kill()


def test_server_still_down_at_the_end_exits_3_then_the_same_command_delivers(tmp_path,
                                                                          digits_data_dir):
    server = helpers.MlflowServer(tmp_path / "server").start()
    try:
        ckpt = tmp_path / "ckpt"
        args = _args(digits_data_dir, server.uri, ckpt, "--finish-timeout", 3)
        proc = subprocess.Popen(train_cmd(*args), cwd=tmp_path, env=env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            _wait_for_epoch(ckpt / "state.json", 1, proc)
            server.kill()
            out, err = proc.communicate(timeout=600)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()
        assert proc.returncode == 3, err[-3000:]
        line = assert_one_error(err, "unreachable", "spooled in", "python -m experiments.sync")
        assert "unreachable" in err.split(line)[0]  # the progress lines said so
        state = json.loads((ckpt / "state.json").read_text())
        assert state["finished"] and state["epoch"] == EPOCHS

        server.start()
        again = run_train(*args, cwd=tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
        run = _assert_finished_with_every_epoch(server.uri)
        assert again.stdout.strip().splitlines()[-2:] == [  # the run, then where its UI is
            f"run_id {run.info.run_id}",
            f"MLflow UI: open {server.uri} in a browser (the tracking server serves the "
            "MLflow UI)"]
    finally:
        server.kill()
