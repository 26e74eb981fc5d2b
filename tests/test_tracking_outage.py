"""Tracking outages cost nothing: a real ``mlflow server`` killed (SIGKILL to its process group)
while a run logs through :class:`experiments.tracking.RunWriter`, started again on the same port
and store; every metric arrives once, in order, and the run ends FINISHED. When the server is
still down at ``finish()`` the spool is kept and ``python -m experiments.sync`` delivers it."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from experiments import tracking
from tests._experiment_helpers import MlflowServer, env

pytestmark = pytest.mark.slow

OUTAGE_S = 20.0
STEP_S = 0.05  # a "training step": the loop logs one step's metrics every STEP_S seconds


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with MlflowServer(tmp_path_factory.mktemp("server")) as srv:
        yield srv


def train_like(writer, steps, on_step=None) -> float:
    """Log ``loss``/``acc`` for ``steps`` as a training loop would; returns the longest time one
    step spent in the writer (what training would have waited)."""
    worst = 0.0
    for step in steps:
        t0 = time.perf_counter()
        writer.log_metrics([("loss", 1.0 / (step + 1), step), ("acc", step / 1000.0, step)])
        if step % 50 == 0:
            writer.log_params({f"p{step}": step})
            writer.set_tags({"last_step": step})
        worst = max(worst, time.perf_counter() - t0)
        if on_step:
            on_step(step)
        time.sleep(STEP_S)
    return worst


def assert_stored(uri, run_id, n_steps):
    import mlflow

    client = mlflow.MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    for key, value in (("loss", lambda s: 1.0 / (s + 1)), ("acc", lambda s: s / 1000.0)):
        history = client.get_metric_history(run_id, key)
        assert [m.step for m in history] == list(range(n_steps)), key  # each once, none missing
        assert [m.value for m in history] == [value(s) for s in range(n_steps)], key
        stamps = [m.timestamp for m in history]
        assert stamps == sorted(stamps), key  # queued in order, stamped when queued
    assert run.data.params == {f"p{s}": str(s) for s in range(0, n_steps, 50)}
    assert run.data.tags["last_step"] == str((n_steps - 1) // 50 * 50)
    assert {a.path for a in client.list_artifacts(run_id)} == {"config.json"}


def test_server_killed_mid_run_and_back_after_20_s(server, tmp_path):
    uri = server.uri
    exp = tracking.setup(uri, "outage-20s")
    run_id, _ = tracking.create_run(uri, exp, "outage-20s")
    writer = tracking.RunWriter(uri, run_id, str(tmp_path / "spool"))
    writer.log_dict({"epochs": 8}, "config.json")
    seen = {}

    def outage(step):
        if step == 40:
            server.kill()
            seen["killed"] = time.monotonic()
        if "killed" in seen and "back" not in seen:
            if time.monotonic() - seen["killed"] > 3:
                seen.setdefault("line", writer.status_line())
                seen.setdefault("reachable", writer.reachable)
            if time.monotonic() - seen["killed"] >= OUTAGE_S:
                seen["pending"] = writer.pending()
                server.start()  # same port, same store; blocks the loop, as a slow step would
                seen["back"] = time.monotonic()

    steps = 0
    worst = 0.0
    while "back" not in seen or steps < 40 + 60:
        worst = max(worst, train_like(writer, [steps], outage))
        steps += 1
    t0 = time.monotonic()
    assert writer.finish(timeout=120), writer.status_line()
    finish_wait = time.monotonic() - t0
    writer.close()

    assert seen["reachable"] is False
    assert seen["line"].startswith(f"tracking store {uri} unreachable for ")
    assert "operations pending, spooled in" in seen["line"]
    assert seen["pending"] > 0
    assert worst < 0.5, f"a logging call blocked {worst:.2f} s during the outage"
    assert_stored(uri, run_id, steps)
    assert not (tmp_path / "spool" / "spool.json").exists()
    print(f"\noutage {seen['back'] - seen['killed']:.0f} s, {steps} steps, {seen['pending']} ops "
          f"pending at restart, longest log call {worst * 1000:.1f} ms, finish waited "
          f"{finish_wait:.1f} s")


def test_server_down_past_finish_then_sync(server, tmp_path):
    uri = server.uri
    exp = tracking.setup(uri, "down-at-end")
    run_id, _ = tracking.create_run(uri, exp, "down-at-end")
    spool_dir = tmp_path / "ckpt"
    writer = tracking.RunWriter(uri, run_id, str(spool_dir))
    writer.log_dict({"epochs": 8}, "config.json")
    train_like(writer, range(30))
    server.kill()
    train_like(writer, range(30, 100))
    t0 = time.monotonic()
    assert writer.finish(timeout=3) is False
    assert time.monotonic() - t0 < 5
    assert writer.status_line().startswith(f"tracking store {uri} unreachable")
    writer.close()
    assert (spool_dir / "spool.json").exists()

    sync = [sys.executable, "-m", "experiments.sync", str(spool_dir)]
    down = subprocess.run(sync, cwd=tmp_path, env=env(), capture_output=True, text=True,
                          timeout=120)
    assert down.returncode == 3, (down.stdout, down.stderr)
    server.start()
    up = subprocess.run(sync, cwd=tmp_path, env=env(), capture_output=True, text=True,
                        timeout=300)
    assert up.returncode == 0, (up.stdout, up.stderr[-3000:])
    assert "run complete, spool removed" in up.stdout
    assert_stored(uri, run_id, 100)
    assert not (spool_dir / "spool.json").exists()
