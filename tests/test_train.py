"""The runner end to end, with real parts: TFDS digits, Keras training, a SQLite MLflow store,
a model reloaded in a fresh process, a run killed with SIGKILL and resumed, MirroredStrategy on
two logical CPUs. Small workloads, few epochs."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_adam_variants as kav  # noqa: E402
from experiments import train  # noqa: E402
from tests._experiment_helpers import (  # noqa: E402,F401
    PYTHON, digits_data_dir, env, free_port, run_train, train_cmd)

pytestmark = pytest.mark.slow


class Capture(keras.callbacks.Callback):
    """Keeps the trained model (the runner does not return it)."""

    def on_train_end(self, logs=None):
        self.trained = self.model


def _client(uri):
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(uri)


def _steps(client, run_id, key):
    return [m.step for m in client.get_metric_history(run_id, key)]


def test_run_logs_to_default_sqlite_store_and_model_reloads(tmp_path, monkeypatch,
                                                            digits_data_dir):
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = train.TrainConfig(optimizer="amsgrad", learning_rate=3e-3, opt={"beta_2": 0.99},
                               workload="digits_mlp", epochs=2, batch_size=64, log_every=5,
                               data_dir=digits_data_dir, run_name="t-sqlite")
    capture = Capture()
    result = train.run(config, callbacks=[capture])

    db = tmp_path / "mlruns" / "mlflow.db"  # the default store: ./mlruns/mlflow.db, made absolute
    assert db.exists()
    uri = f"sqlite:///{db}"
    client = _client(uri)
    [found] = mlflow.search_runs(experiment_names=["kav-train"], output_format="list")
    assert found.info.run_id == result.run_id and found.info.status == "FINISHED"
    assert found.info.artifact_uri.removeprefix("file://").startswith(
        str(tmp_path / "mlruns" / "artifacts" / "kav-train"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlruns"]  # nothing anywhere else

    params = found.data.params
    optimizer = capture.trained.optimizer
    assert isinstance(optimizer, kav.AMSGrad)
    assert params["optimizer"] == "amsgrad"
    # mlflow.keras.autolog's names (kav.callbacks.MlflowLogger's), the class with its package
    assert params["optimizer_name"] == "keras_adam_variants.AMSGrad"
    for key, value in optimizer.get_config().items():
        if key != "name":
            assert params[f"optimizer_{key}"] == str(value), key
    assert params["optimizer_beta_2"] == "0.99" and params["optimizer_learning_rate"] == "0.003"
    assert not any(k.startswith("optimizer.") for k in params) and "learning_rate" not in params
    assert {k: params[k] for k in ("workload", "dataset", "batch_size", "epochs", "seed", "jit",
                                   "device", "strategy")} == {
        "workload": "digits_mlp", "dataset": "digits", "batch_size": "64", "epochs": "2",
        "seed": "0", "jit": "True", "device": "cpu", "strategy": "none"}

    for key in train.EPOCH_KEYS:  # autolog's step: the epoch from 0
        assert _steps(client, result.run_id, key) == [0, 1], key
    assert "lr" not in client.get_run(result.run_id).data.metrics
    assert set(result.history) >= {"loss", "accuracy", "val_loss", "val_accuracy",
                                   "learning_rate", "epoch_time"}
    assert [m.value for m in client.get_metric_history(result.run_id, "learning_rate")] == \
        pytest.approx([3e-3, 3e-3])
    assert result.epoch_times == result.history["epoch_time"] and len(result.epoch_times) == 2
    assert result.history["val_accuracy"][-1] > 0.5
    assert _steps(client, result.run_id, "train_loss_step") == list(range(5, 2 * 23 + 1, 5))

    tags = found.data.tags
    for key in ("kav.version", "keras.version", "tensorflow.version", "mlflow.version", "device",
                "git.commit"):
        assert tags.get(key), key
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.json", "learning_curve.png", "model_summary.txt"} <= artifacts
    resolved = json.loads(open(client.download_artifacts(result.run_id, "config.json",
                                                         str(tmp_path))).read())
    assert resolved["optimizer"]["config"]["beta_2"] == 0.99
    assert {i.dataset.name for i in found.inputs.dataset_inputs} == {"digits-train", "digits-test"}
    for i in found.inputs.dataset_inputs:  # per example: 8x8x1 images, with a batch axis
        assert "[-1, 8, 8, 1]" in i.dataset.schema, i.dataset.schema

    # The logged model loads with pyfunc in a fresh process that imports nothing of the package
    # itself, predicts the same, lists the package in its requirements, and reloads in Keras.
    from experiments import datasets

    x = datasets.load("digits", data_dir=digits_data_dir).sample(16)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys, mlflow, numpy as np
        mlflow.set_tracking_uri({uri!r})
        uri = {tags['model_uri']!r}
        pyfunc = mlflow.pyfunc.load_model(uri)
        np.save({str(tmp_path / 'y.npy')!r}, pyfunc.predict(np.load({str(tmp_path / 'x.npy')!r})))
        print("REQUIREMENTS", open(mlflow.pyfunc.get_model_dependencies(uri)).read().split())
        model = mlflow.keras.load_model(uri)
        print("OPTIMIZER", type(model.optimizer).__name__)
    """)
    proc = subprocess.run([PYTHON, "-c", script], env=env(), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OPTIMIZER AMSGrad" in proc.stdout
    assert "'keras-adam-variants==" in proc.stdout.split("REQUIREMENTS", 1)[1], proc.stdout
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"),
                               capture.trained.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_optimizer_names_and_bad_arguments(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # The names written out for a fast check are the package's registry, in its order.
    assert list(train.PACKAGE_OPTIMIZERS) == kav.names()
    assert train.optimizer_label("ams-grad") == "AMSGrad" and train.optimizer_label("Keras-Adam") == "keras_adam"
    assert type(train.build_optimizer("keras_adam", 1e-2, {})) is keras.optimizers.Adam
    for name in kav.names():
        assert isinstance(train.build_optimizer(name, None, {}), kav.get(name))
    assert train.build_optimizer("amsgrad", 0.5, {"beta_2": 0.9}).get_config()["beta_2"] == 0.9

    assert train.main(["--optimizer", "amsgrad", "--opt", "beta_3=0.5"]) == 2
    err = capsys.readouterr().err
    assert "beta_3" in err and "Traceback" not in err
    assert train.main(["--optimizer", "adamz"]) == 2
    err = capsys.readouterr().err
    assert "adamz" in err and "keras_adam" in err
    assert train.main(["--workload", "nope"]) == 2
    assert "digits_mlp" in capsys.readouterr().err

    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        assert train.main(["--device", "gpu"]) == 2
        assert "no GPU" in capsys.readouterr().err


def test_unreachable_tracking_server_fails_fast(capsys, digits_data_dir):
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    code = train.main(["--workload", "digits_logreg", "--tracking-uri", uri,
                       "--data-dir", digits_data_dir])
    assert code == 2 and time.monotonic() - start < 15
    err = capsys.readouterr().err
    assert uri in err and "Traceback" not in err


def _weights(path):
    model = keras.models.load_model(path, custom_objects=kav.custom_objects())
    return model.get_weights(), [v.numpy() for v in model.optimizer.variables]


def test_killed_run_resumes_same_run_and_same_weights(tmp_path, digits_data_dir):
    args = ["--optimizer", "adam", "--workload", "digits_mlp", "--epochs", 12, "--batch-size", 64,
            "--seed", 3, "--log-every", 7, "--no-log-model", "--data-dir", digits_data_dir,
            "--checkpoint-dir", tmp_path / "ckpt", "--experiment", "resume"]
    state_path = tmp_path / "ckpt" / "state.json"
    proc = subprocess.Popen(train_cmd(*args), cwd=tmp_path, env=env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if state_path.exists() and json.loads(state_path.read_text())["epoch"] >= 1:
                break
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()[-3000:]
    killed = json.loads(state_path.read_text())
    assert 1 <= killed["epoch"] < 12 and not killed["finished"]

    resumed = run_train(*args, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    state = json.loads(state_path.read_text())
    assert state["finished"] and state["run_id"] == killed["run_id"]
    assert resumed.stdout.strip().splitlines()[-2:] == [
        f"run_id {killed['run_id']}", f"MLflow UI: kav ui    (from {tmp_path})"], resumed.stdout

    import mlflow

    client = _client(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    runs = mlflow.search_runs(experiment_names=["resume"], output_format="list")
    assert [r.info.run_id for r in runs] == [killed["run_id"]]
    assert runs[0].info.run_name == "adam-seed3"  # the default name
    for key in train.EPOCH_KEYS:
        assert _steps(client, killed["run_id"], key) == list(range(12)), key
    assert _steps(client, killed["run_id"], "train_loss_step") == list(range(7, 12 * 23 + 1, 7))
    assert len(state["history"]["loss"]) == 12

    # An uninterrupted run of the same configuration ends with the same weights and state.
    config = train.TrainConfig(optimizer="adam", workload="digits_mlp", epochs=12, batch_size=64,
                               seed=3, log_every=7, log_model=False, data_dir=digits_data_dir,
                               checkpoint_dir=str(tmp_path / "ckpt2"), experiment="straight",
                               tracking_uri=f"sqlite:///{tmp_path}/straight.db")
    straight = train.run(config)
    assert straight.history["loss"] == state["history"]["loss"]
    weights, slots = _weights(tmp_path / "ckpt" / state["model"])
    weights2, slots2 = _weights(tmp_path / "ckpt2" / "epoch-00012.keras")
    for a, b in zip(weights + slots, weights2 + slots2, strict=True):
        np.testing.assert_array_equal(a, b)


def test_mirrored_strategy_on_two_logical_cpus(tmp_path, digits_data_dir):
    script = textwrap.dedent(f"""
        import json, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import mlflow
        from experiments.train import TrainConfig, run
        result = run(TrainConfig(optimizer="amsgrad", workload="digits_logreg", epochs=2,
                                 batch_size=64, strategy="mirrored", learning_rate=0.05,
                                 data_dir={digits_data_dir!r}, log_model=False))
        run_ = mlflow.get_run(result.run_id)
        print("RESULT", json.dumps({{"params": run_.data.params, "history": result.history}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert out["params"]["strategy"] == "mirrored" and out["params"]["replicas"] == "2"
    history = out["history"]
    assert len(history["loss"]) == 2 and history["loss"][1] < history["loss"][0]
    assert history["accuracy"][1] > 0.5
