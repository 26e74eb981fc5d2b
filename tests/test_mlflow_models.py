"""A model logged with `keras_adam_variants.mlflow_models.log_model` loads and serves in a fresh
process that imports nothing of the package: `mlflow.pyfunc.load_model`, the
``mlflow models predict --env-manager local`` command line and a real ``mlflow models serve``
HTTP server, against a real SQLite store (one small model, trained once for the module)."""

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

import keras
import numpy as np
import pytest

import keras_adam_variants as kav

mlflow = pytest.importorskip("mlflow")
from keras_adam_variants import mlflow_models  # noqa: E402
from tests._experiment_helpers import env, free_port, serving  # noqa: E402

MLFLOW_CLI = os.path.join(os.path.dirname(sys.executable), "mlflow")


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """(tracking uri, model info, x, model.predict(x)) for an AMSGrad-trained model, once per module."""
    from mlflow.models import infer_signature

    root = tmp_path_factory.mktemp("logged")
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("serve", artifact_location=str(root / "artifacts"))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(7, activation="relu"),
                              keras.layers.Dense(3)])
    model.compile(optimizer=kav.AMSGrad(learning_rate=0.01), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype(np.float32)
    model.fit(x, rng.standard_normal((64, 3)).astype(np.float32), epochs=1, verbose=0)
    expected = model.predict(x[:4], verbose=0)
    try:
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow_models.log_model(model, name="model",
                                           signature=infer_signature(x[:4], expected))
        yield uri, info, x[:4], expected
    finally:
        mlflow.set_tracking_uri(None)


def test_logged_model_names_the_package_and_its_loader(logged, tmp_path):
    uri, info, _, _ = logged
    path = mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "dl"))
    requirements = open(os.path.join(path, "requirements.txt")).read().split()
    assert any(r.startswith("keras-adam-variants==") for r in requirements), requirements
    assert any(r.startswith("keras==") for r in requirements), requirements
    assert any(r.startswith(("tensorflow==", "tensorflow-cpu==")) for r in requirements)
    model = mlflow.models.Model.load(os.path.join(path, "MLmodel"))
    assert model.flavors["python_function"]["loader_module"] == "keras_adam_variants.mlflow_models"
    assert model.flavors["keras"]["keras_backend"] == "tensorflow"  # an ordinary keras flavor
    # The keras flavor's own loader still works, with the package's custom objects.
    reloaded = mlflow.keras.load_model(info.model_uri, custom_objects=kav.custom_objects())
    assert type(reloaded.optimizer) is kav.AMSGrad


@pytest.mark.slow
def test_fresh_process_pyfunc_and_models_predict(logged, tmp_path):
    uri, info, x, expected = logged
    child_env = env(MLFLOW_TRACKING_URI=uri)
    # 1. mlflow.pyfunc.load_model in a process that never imports keras_adam_variants itself.
    script = textwrap.dedent(f"""
        import json, sys, numpy as np, mlflow
        x = np.asarray(json.loads(sys.argv[1]), dtype=np.float32)
        model = mlflow.pyfunc.load_model({info.model_uri!r})
        print("PRED", json.dumps(np.asarray(model.predict(x)).tolist()))
    """)
    out = subprocess.run([sys.executable, "-c", script, json.dumps(x.tolist())], env=child_env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    predicted = json.loads(next(line for line in out.stdout.splitlines()
                                if line.startswith("PRED "))[5:])
    np.testing.assert_allclose(predicted, expected, rtol=1e-5, atol=1e-6)

    # 2. The command line MLflow documents for serving, with the current environment, by the
    #    run-relative URI a user copies from the UI.
    (tmp_path / "input.json").write_text(json.dumps({"inputs": x.tolist()}))
    out = subprocess.run(
        [MLFLOW_CLI, "models", "predict", "-m", f"runs:/{info.run_id}/model", "-i", str(tmp_path / "input.json"),
         "-t", "json", "-o", str(tmp_path / "output.json"), "--env-manager", "local"],
        env=child_env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "step" not in out.stdout  # no Keras progress bar on stdout, where the JSON goes
    served = json.loads((tmp_path / "output.json").read_text())
    served = served["predictions"] if isinstance(served, dict) else served
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)


@contextlib.contextmanager
def _models_serve(model_uri, tracking_uri, cwd, timeout=240.0):
    """``mlflow models serve -m MODEL_URI --env-manager local`` on 127.0.0.1 at a free port, in its
    own process group (killed at the end); yields its base URL once ``/ping`` answers 200."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # It runs `uvicorn` from PATH: this interpreter's bin directory first, as in an activated venv.
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    cmd = [MLFLOW_CLI, "models", "serve", "-m", model_uri, "--env-manager", "local",
           "--host", "127.0.0.1", "-p", str(port)]
    with serving(cmd, cwd, url + "/ping", os.path.join(cwd, "serve.log"), timeout,
                 MLFLOW_TRACKING_URI=tracking_uri, PATH=path):
        yield url


@pytest.mark.slow
def test_models_serve_answers_invocations(logged, tmp_path):
    """The documented REST server, as a user starts it from the run's URI, predicts as the model."""
    uri, info, x, expected = logged
    with _models_serve(f"runs:/{info.run_id}/model", uri, str(tmp_path)) as url:
        request = urllib.request.Request(
            url + "/invocations", data=json.dumps({"inputs": x.tolist()}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                assert response.status == 200
                served = json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise AssertionError(f"/invocations: HTTP {error.code}: {error.read()[:2000]!r}") from None
    served = served["predictions"] if isinstance(served, dict) else served
    assert np.shape(served) == expected.shape
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)


def test_plain_keras_flavor_fails_in_a_fresh_process_without_the_package(tmp_path):
    """The failure this module fixes, kept as a check that the test above can fail."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=kav.AMSGrad(), loss="mse")
    path = str(tmp_path / "plain")
    mlflow.keras.save_model(model, path, pip_requirements=["keras"])
    script = f"import mlflow; mlflow.pyfunc.load_model({path!r})"
    out = subprocess.run([sys.executable, "-c", script], env=env(), cwd=tmp_path,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode != 0 and "AMSGrad" in out.stderr


def test_the_package_imports_without_mlflow(tmp_path):
    """Only `keras_adam_variants.mlflow_models` needs MLflow; the optimizers and callbacks don't."""
    script = textwrap.dedent("""
        import sys
        class NoMlflow:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "mlflow":
                    raise ImportError("mlflow is not installed (blocked by the test)")
        sys.meta_path.insert(0, NoMlflow())
        import keras_adam_variants as kav
        kav.callbacks.MlflowLogger(sink=object()), kav.callbacks.AdaptiveLRLogger()
        try:
            kav.mlflow_models
        except ImportError as error:
            print("LAZY", error)
    """)
    out = subprocess.run([sys.executable, "-c", script], env=env(), cwd=tmp_path,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "LAZY mlflow is not installed" in out.stdout
