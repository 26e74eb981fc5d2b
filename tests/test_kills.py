"""A real SIGKILL at five moments of a run, then the same command: the store holds exactly one
run for it, FINISHED, every epoch's metrics once, and the final weights equal (bit for bit) those
of an uninterrupted run. The kill comes from the process itself at a named point
(``KAV_FAULT_KILL``, :mod:`experiments.faults`), so each moment is hit exactly."""

import json
import os
import signal

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_adam_variants as kav  # noqa: E402
from experiments import train  # noqa: E402
from tests._experiment_helpers import (  # noqa: E402,F401
    digits_data_dir, metric_steps, run_train, runs_of)

pytestmark = pytest.mark.slow

EPOCHS, BATCH, SEED, LOG_EVERY = 3, 64, 5, 7
STEPS = EPOCHS * -(-1437 // BATCH)  # digits: 1,437 training examples, 23 batches of 64
MOMENTS = ["run_created", "state_write", "mid_epoch", "checkpoint_write", "model_logged"]


def _args(data_dir, uri, checkpoint_dir=None, log_model=False):
    args = ["--optimizer", "adam", "--workload", "digits_logreg", "--epochs", EPOCHS,
            "--batch-size", BATCH, "--seed", SEED, "--log-every", LOG_EVERY,
            "--data-dir", data_dir, "--tracking-uri", uri, "--experiment", "kills"]
    if checkpoint_dir is not None:
        args += ["--checkpoint-dir", checkpoint_dir]
    return args if log_model else [*args, "--no-log-model"]


def _weights(path):
    model = keras.models.load_model(path, custom_objects=kav.custom_objects())
    return model.get_weights() + [v.numpy() for v in model.optimizer.variables]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, digits_data_dir):
    """The final weights and optimizer state of the same run, never interrupted."""
    root = tmp_path_factory.mktemp("uninterrupted")
    config = train.TrainConfig(optimizer="adam", workload="digits_logreg", epochs=EPOCHS,
                               batch_size=BATCH, seed=SEED, log_every=LOG_EVERY, log_model=False,
                               data_dir=digits_data_dir, experiment="straight",
                               tracking_uri=f"sqlite:///{root}/mlflow.db",
                               checkpoint_dir=str(root / "ckpt"))
    result = train.run(config)
    return {"weights": _weights(root / "ckpt" / f"epoch-{EPOCHS:05d}.keras"),
            "loss": result.history["loss"]}


def _assert_one_whole_run(uri):
    runs = runs_of(uri, "kills")
    assert len(runs) == 1, [(r.info.run_id, r.info.status) for r in runs]
    run = runs[0]
    assert run.info.status == "FINISHED"
    for key in train.EPOCH_KEYS:
        assert metric_steps(uri, run.info.run_id, key) == list(range(EPOCHS)), key  # from 0
    assert metric_steps(uri, run.info.run_id, train.STEP_KEY) == list(
        range(LOG_EVERY, STEPS + 1, LOG_EVERY))
    assert run.data.params["epochs"] == str(EPOCHS) and run.data.params["seed"] == str(SEED)
    assert run.info.run_name == f"adam-seed{SEED}"  # the default name, not MLflow's random one
    return run


# What the checkpoint holds right after each kill of the chain (None: no state.json yet).
AFTER_KILL = {"run_created": None, "state_write": None, "mid_epoch": 1, "checkpoint_write": 1,
              "model_logged": EPOCHS}


def test_kills_at_five_moments_then_same_command(tmp_path, digits_data_dir, uninterrupted):
    """One command killed at each moment in turn -- right after run creation, at the first state
    write, mid-epoch, during a checkpoint write, during final model logging -- each time run
    again; then once more to the end."""
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    ckpt = tmp_path / "ckpt"
    args = _args(digits_data_dir, uri, ckpt, log_model=True)
    run_id = None
    for moment in MOMENTS:
        killed = run_train(*args, cwd=tmp_path, KAV_FAULT_KILL=moment)
        assert killed.returncode == -signal.SIGKILL, (moment, killed.stderr[-3000:])
        runs = runs_of(uri, "kills")
        assert len(runs) == 1 and runs[0].info.status == "RUNNING", moment
        run_id = run_id or runs[0].info.run_id
        assert runs[0].info.run_id == run_id, moment  # never a second run
        state_path = ckpt / "state.json"
        epoch = AFTER_KILL[moment]
        if epoch is None:
            assert not state_path.exists(), moment
        else:
            assert json.loads(state_path.read_text())["epoch"] == epoch, moment
        if moment == "state_write":
            assert list(ckpt.glob("state.json.tmp-*")), "the kill left a half-written state"
        if moment == "checkpoint_write":
            assert list(ckpt.glob("partial-*.keras")), "the kill left a half-written model"

    again = run_train(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    run = _assert_one_whole_run(uri)
    assert run.info.run_id == run_id
    assert again.stdout.strip().splitlines()[-2:] == [  # the run, then how to see it
        f"run_id {run_id}", f"MLflow UI: kav ui --tracking-uri {uri}"], again.stdout
    state = json.loads((ckpt / "state.json").read_text())
    assert state["finished"] and state["run_id"] == run_id
    assert state["history"]["loss"] == uninterrupted["loss"]
    assert sorted(os.listdir(ckpt)) == [".lock", f"epoch-{EPOCHS:05d}.keras", "run_key.json",
                                        "state.json"]  # no temporary left behind
    for a, b in zip(_weights(ckpt / state["model"]), uninterrupted["weights"], strict=True):
        np.testing.assert_array_equal(a, b)
    # The model logged before the last kill is the run's model: not logged a second time.
    assert run.data.tags["model_uri"] == state["model_uri"]
    assert [o.model_id for o in run.outputs.model_outputs] == [state["model_uri"].split("/")[-1]]
    # Logged once: params, the dataset inputs.
    assert len(run.inputs.dataset_inputs) == 2


def test_kill_without_checkpoint_dir_resumes_then_next_command_is_a_new_run(
        tmp_path, digits_data_dir, uninterrupted):
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    args = _args(digits_data_dir, uri)
    killed = run_train(*args, cwd=tmp_path, KAV_FAULT_KILL="mid_epoch")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    [default_dir] = (tmp_path / "store" / "checkpoints" / "kills").iterdir()
    assert json.loads((default_dir / "state.json").read_text())["epoch"] == 1

    again = run_train(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from epoch-00001.keras" in again.stderr
    first = _assert_one_whole_run(uri)
    assert not default_dir.exists()  # finished: the default checkpoint is cleared

    later = run_train(*args, cwd=tmp_path)  # the same command, later: a new run
    assert later.returncode == 0, later.stderr[-3000:]
    runs = runs_of(uri, "kills")
    assert [r.info.run_id for r in runs][0] == first.info.run_id and len(runs) == 2
    assert all(r.info.status == "FINISHED" for r in runs)
    assert not default_dir.exists()
