"""A real ``mlflow server`` (started here on 127.0.0.1 at a free port) receives a training run
over HTTP; the run is read back through the REST API."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

from experiments import train  # noqa: E402
from tests._experiment_helpers import digits_data_dir, mlflow_server, run_train  # noqa: E402,F401

pytestmark = pytest.mark.slow


def test_train_logs_to_a_tracking_server_over_http(tmp_path, digits_data_dir):
    import mlflow

    with mlflow_server(tmp_path) as uri:
        proc = run_train("--optimizer", "adamax", "--workload", "digits_logreg", "--epochs", 2,
                         "--batch-size", 128, "--learning-rate", 0.02, "--log-every", 3,
                         "--tracking-uri", uri, "--experiment", "over-http",
                         "--data-dir", digits_data_dir, "--run-name", "http-run",
                         cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        # Nothing went to a local store: ./mlruns holds only the run's local side (checkpoints
        # and spool, as for any tracking server), emptied once the run finished.
        local = tmp_path / "mlruns"
        assert not (local / "mlflow.db").exists() and not (local / "artifacts").exists()
        assert [p for p in local.rglob("*") if p.is_file()] == []

        mlflow.set_tracking_uri(uri)
        runs = mlflow.search_runs(experiment_names=["over-http"], output_format="list")
        assert len(runs) == 1
        run = runs[0]
        assert run.info.run_name == "http-run" and run.info.status == "FINISHED"
        params = run.data.params
        assert params["optimizer"] == "adamax"
        assert params["optimizer_name"] == "keras_adam_variants.Adamax"
        assert params["optimizer_learning_rate"] == "0.02" and "optimizer_beta_2" in params
        assert params["workload"] == "digits_logreg" and params["epochs"] == "2"

        client = mlflow.MlflowClient(uri)
        for key in train.EPOCH_KEYS:
            history = client.get_metric_history(run.info.run_id, key)
            assert [m.step for m in history] == [0, 1], key  # autolog's step, from 0
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train_loss_step")]
        assert steps == list(range(3, 2 * 12 + 1, 3))

        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.json", "learning_curve.png"} <= artifacts
        model_uri = run.data.tags["model_uri"]
        model = client.get_logged_model(model_uri.split("/", 1)[1].lstrip("/"))
        assert model.source_run_id == run.info.run_id
        assert {a.path for a in client.list_logged_model_artifacts(model.model_id)} >= {
            "MLmodel", "requirements.txt"}
