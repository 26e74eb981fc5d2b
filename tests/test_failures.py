"""Every bad situation of issue 8 point 6 ends with ONE ``error:`` line naming the path or URI,
exit status 2, within 10 s, no traceback, and no run created in the store. Real parts: SQLite
stores, real read-only mounts (tests run as root, so permissions would not stop a write), a
real checkpoint of a crashed run, real TFDS files truncated or damaged."""

import json
import os
import shutil
import subprocess
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

from experiments import train  # noqa: E402
from tests._experiment_helpers import (  # noqa: E402,F401
    assert_one_error, digits_data_dir, read_only, run_train, runs_of, train_cmd, env)

pytestmark = pytest.mark.slow

EXPERIMENT = "failures"
LIMIT_S = 10.0


class CrashAfter:
    """A Keras callback that raises after ``epochs`` epochs: a crashed run, its checkpoint kept."""

    def __new__(cls, epochs):
        import keras

        class _Crash(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch + 1 >= epochs:
                    raise RuntimeError("crash for the test")

        return _Crash()


@pytest.fixture(scope="module")
def world(tmp_path_factory, digits_data_dir):
    """A store with one crashed run (checkpoint at epoch 1 of 6), and a second crashed run of
    another seed (for a model file of another run)."""
    root = tmp_path_factory.mktemp("failures")
    uri = f"sqlite:///{root}/store/mlflow.db"
    checkpoints = {}
    for seed in (0, 1):
        config = train.TrainConfig(optimizer="adam", workload="digits_logreg", epochs=6,
                                   batch_size=64, seed=seed, log_model=False,
                                   data_dir=digits_data_dir, tracking_uri=uri,
                                   experiment=EXPERIMENT,
                                   checkpoint_dir=str(root / f"base{seed}"))
        with pytest.raises(RuntimeError, match="crash for the test"):
            train.run(config, callbacks=[CrashAfter(1)])
        checkpoints[seed] = root / f"base{seed}"
    state = json.loads((checkpoints[0] / "state.json").read_text())
    assert state["epoch"] == 1 and state["model"] == "epoch-00001.keras"
    return {"root": root, "uri": uri, "base": checkpoints[0], "other": checkpoints[1],
            "data": digits_data_dir}


def _argv(world, checkpoint_dir, *extra, uri=None, data_dir=None, experiment=EXPERIMENT):
    return ["--workload", "digits_logreg", "--epochs", "6", "--batch-size", "64",
            "--no-log-model", "--data-dir", str(data_dir or world["data"]),
            "--tracking-uri", uri or world["uri"], "--experiment", experiment,
            "--checkpoint-dir", str(checkpoint_dir), *extra]


def _fails(capsys, world, argv, *needles, experiment=EXPERIMENT, uri=None):
    """Run ``train.main(argv)``: exit 2 within LIMIT_S, one error line with ``needles``, no run
    added to the store. Returns the line."""
    uri = uri or world["uri"]
    before = len(runs_of(world["uri"], experiment))
    capsys.readouterr()
    start = time.monotonic()
    code = train.main(argv)
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 2, err[-3000:]
    line = assert_one_error(err, *needles)
    assert elapsed < LIMIT_S, (elapsed, line)
    assert len(runs_of(world["uri"], experiment)) == before, "a run was created"
    print(f"[{elapsed:.2f} s] {line}")
    return line


def _copy(world, tmp_path, name="ckpt"):
    target = tmp_path / name
    shutil.copytree(world["base"], target)
    return target


# ---- numbers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag,value,needle", [
    ("--seed", "-1", "--seed"), ("--seed", "4294967296", "--seed"), ("--epochs", "0", "--epochs"),
    ("--batch-size", "-3", "--batch-size"), ("--learning-rate", "-0.1", "--learning-rate"),
    ("--learning-rate", "nan", "--learning-rate"), ("--log-every", "-1", "--log-every"),
])
def test_invalid_numbers_are_refused_by_the_parser(capsys, flag, value, needle):
    with pytest.raises(SystemExit) as exit_:
        train.main([flag, value])
    assert exit_.value.code == 2
    assert_one_error(capsys.readouterr().err, needle, value)


def test_seed_minus_one_in_a_fresh_process_is_fast(tmp_path):
    start = time.monotonic()
    proc = run_train("--seed", "-1", cwd=tmp_path, timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2
    assert_one_error(proc.stderr, "--seed", "-1")
    assert elapsed < 5, elapsed
    assert not (tmp_path / "mlruns").exists()


# ---- checkpoint directories ----------------------------------------------------------------------

def test_checkpoint_dir_that_is_a_file(capsys, world, tmp_path):
    path = tmp_path / "afile"
    path.write_text("not a directory")
    _fails(capsys, world, _argv(world, path), str(path), "is a file")


def test_checkpoint_dir_on_a_read_only_file_system(capsys, world, tmp_path):
    with read_only(tmp_path / "ro") as ro:
        _fails(capsys, world, _argv(world, os.path.join(ro, "ckpt")), ro, "not writable")
        _fails(capsys, world, _argv(world, ro), ro, "not writable")


def test_existing_checkpoint_dir_made_read_only(capsys, world, tmp_path):
    source = _copy(world, tmp_path, "source")
    with read_only(tmp_path / "ro", source=source) as ro:
        _fails(capsys, world, _argv(world, ro), ro, "not writable")


@pytest.mark.parametrize("case", ["empty", "truncated", "braces", "unknown_run", "epoch_99",
                                  "model_missing", "model_truncated", "model_of_another_run",
                                  "other_settings"])
def test_checkpoint_that_does_not_hold_this_run(capsys, world, tmp_path, case):
    ckpt = _copy(world, tmp_path)
    state_path = ckpt / "state.json"
    state = json.loads(state_path.read_text())
    model = ckpt / state["model"]
    argv = _argv(world, ckpt)
    if case == "empty":
        state_path.write_text("")
        needles = [str(state_path), "empty"]
    elif case == "truncated":
        state_path.write_text(state_path.read_text()[:40])
        needles = [str(state_path), "truncated"]
    elif case == "braces":
        state_path.write_text("{}")
        needles = [str(state_path), "not a run's state"]
    elif case == "unknown_run":
        state_path.write_text(json.dumps({**state, "run_id": "0" * 32}))
        needles = [str(state_path), "0" * 32, "does not have"]
    elif case == "epoch_99":
        state_path.write_text(json.dumps({**state, "epoch": 99}))
        needles = [str(state_path), "epoch 99 of 6"]
    elif case == "model_missing":
        model.unlink()
        needles = [str(model), "missing"]
    elif case == "model_truncated":
        model.write_bytes(model.read_bytes()[:1000])
        needles = [str(model), "truncated"]
    elif case == "model_of_another_run":
        shutil.copy(world["other"] / state["model"], model)
        needles = [str(model), "another run"]
    else:  # the same checkpoint dir, a command with other settings
        argv = [*argv, "--seed", "7"]
        needles = [str(ckpt), "seed: 0 there, 7 here"]
    _fails(capsys, world, argv, *needles)


def test_debug_shows_the_traceback(capsys, world, tmp_path):
    ckpt = _copy(world, tmp_path)
    (ckpt / "state.json").write_text("{}")
    assert train.main([*_argv(world, ckpt), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and len([x for x in err.splitlines() if x.startswith("error:")]) == 1


def test_killed_process_leftovers_are_cleaned(world, tmp_path):
    from experiments.checkpoints import Checkpoints

    ckpt = _copy(world, tmp_path)
    for name in ("state.json.tmp-12345", "partial-12345-epoch-00002.keras", "run_key.json.tmp-9"):
        (ckpt / name).write_text("half written")
    opened = Checkpoints(str(ckpt))
    try:
        assert sorted(p.name for p in ckpt.iterdir()) == [
            ".lock", "epoch-00001.keras", "run_key.json", "state.json"]
    finally:
        opened.close()


def test_checkpoint_dir_in_use_by_another_process(capsys, world, tmp_path):
    from filelock import FileLock

    ckpt = _copy(world, tmp_path)
    lock = FileLock(str(ckpt / ".lock"))
    script = ("import time, filelock; l = filelock.FileLock(%r); l.acquire(); print('held', "
              "flush=True); time.sleep(60)" % str(ckpt / ".lock"))
    holder = subprocess.Popen([train_cmd()[0], "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        _fails(capsys, world, _argv(world, ckpt), str(ckpt), "in use")
    finally:
        holder.kill()
        holder.wait()
    del lock


# ---- tracking stores ---------------------------------------------------------------------------

def test_sqlite_uri_at_a_file_that_is_not_a_database(capsys, world, tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database\n" * 10)
    uri = f"sqlite:///{path}"
    _fails(capsys, world, _argv(world, tmp_path / "ckpt", uri=uri), str(path))
    assert path.read_text().startswith("these are my notes")


def test_sqlite_store_on_a_read_only_file_system(capsys, world, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    shutil.copy(world["uri"][len("sqlite:///"):], store / "mlflow.db")
    with read_only(tmp_path / "ro", source=store) as ro:
        uri = f"sqlite:///{ro}/mlflow.db"
        _fails(capsys, world, _argv(world, tmp_path / "ckpt", uri=uri), ro)


@pytest.mark.parametrize("uri", ["file:///tmp/kav-file-store", "foo://somewhere/x",
                                 "postgresql://kav@127.0.0.1:1/kav"])
def test_unsupported_or_unreachable_uris(capsys, world, tmp_path, uri):
    _fails(capsys, world, _argv(world, tmp_path / "ckpt", uri=uri), uri.split("://")[0])


def test_unwritable_artifact_location(capsys, world, tmp_path):
    import mlflow

    with read_only(tmp_path / "ro") as ro:
        client = mlflow.MlflowClient(world["uri"])
        client.create_experiment("artifacts-ro", artifact_location=os.path.join(ro, "art"))
        _fails(capsys, world, _argv(world, tmp_path / "ckpt", experiment="artifacts-ro"),
               os.path.join(ro, "art"), experiment="artifacts-ro")


def test_unwritable_working_directory(capsys, world, tmp_path, monkeypatch):
    with read_only(tmp_path / "ro") as ro:
        monkeypatch.chdir(ro)
        _fails(capsys, world, _argv(world, tmp_path / "ckpt"), ro, "working directory")


# ---- TFDS data ------------------------------------------------------------------------------------

def _data_copy(world, tmp_path):
    target = tmp_path / "tfds"
    shutil.copytree(world["data"], target)
    version_dir = target / "digits" / "1.0.0"
    return target, version_dir


def test_unwritable_tfds_data_dir(capsys, world, tmp_path):
    with read_only(tmp_path / "ro") as ro:
        _fails(capsys, world, _argv(world, tmp_path / "ckpt", data_dir=ro), ro, "not writable")


@pytest.mark.parametrize("damage", ["truncated", "corrupted", "no_dataset_info", "no_split_file",
                                    "no_split_entry", "dataset_info_garbage"])
def test_damaged_tfds_data(capsys, world, tmp_path, damage):
    root, version_dir = _data_copy(world, tmp_path)
    train_file = version_dir / "digits-train.tfrecord-00000-of-00001"
    info = version_dir / "dataset_info.json"
    if damage == "truncated":
        train_file.write_bytes(train_file.read_bytes()[:-500])
        needles = ["truncated"]
    elif damage == "corrupted":
        data = bytearray(train_file.read_bytes())
        for i in range(len(data) // 2, len(data) // 2 + 64):
            data[i] ^= 0xFF
        train_file.write_bytes(bytes(data))
        needles = [str(train_file), "damaged"]
    elif damage == "no_dataset_info":
        info.unlink()
        needles = ["dataset_info.json is missing"]
    elif damage == "no_split_file":
        (version_dir / "digits-test.tfrecord-00000-of-00001").unlink()
        needles = ["'test'", "digits-test.tfrecord-00000-of-00001"]
    elif damage == "no_split_entry":
        parsed = json.loads(info.read_text())
        parsed["splits"] = [s for s in parsed["splits"] if s["name"] != "test"]
        info.write_text(json.dumps(parsed))
        needles = ["no 'test' split"]
    else:
        info.write_text('{"splits": [')
        needles = ["dataset_info.json", "damaged"]
    _fails(capsys, world, _argv(world, tmp_path / "ckpt", data_dir=root), str(version_dir),
           *needles)


# ---- fresh processes: what a user sees, timed from the shell ------------------------------------

@pytest.mark.parametrize("case", ["checkpoint_is_a_file", "state_epoch_99", "tfds_truncated"])
def test_fresh_process_fails_in_one_line_within_10_s(world, tmp_path, case):
    ckpt = tmp_path / "ckpt"
    data_dir = world["data"]
    if case == "checkpoint_is_a_file":
        ckpt.write_text("x")
    elif case == "state_epoch_99":
        ckpt = _copy(world, tmp_path)
        state = json.loads((ckpt / "state.json").read_text())
        (ckpt / "state.json").write_text(json.dumps({**state, "epoch": 99}))
    else:
        data_dir, version_dir = _data_copy(world, tmp_path)
        f = version_dir / "digits-train.tfrecord-00000-of-00001"
        f.write_bytes(f.read_bytes()[:-100])
    start = time.monotonic()
    proc = run_train(*_argv(world, ckpt, data_dir=data_dir), cwd=tmp_path, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = assert_one_error(proc.stderr)
    print(f"[{elapsed:.2f} s fresh process] {line}")
    assert elapsed < LIMIT_S, (elapsed, line)
