"""``python -m experiments.compare`` end to end with real parts: TFDS digits, Keras training, a
temporary SQLite MLflow store. Two optimizers, one seed, one epoch."""

import csv
import io
import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from experiments import compare  # noqa: E402
from experiments.report import Table, fmt_mean_std, mean_std  # noqa: E402
from tests._experiment_helpers import digits_data_dir  # noqa: E402,F401


def test_default_arms_cover_every_optimizer_of_the_package_and_the_control():
    import keras_adam_variants as kav

    arms = compare.default_arms()
    assert [a.label for a in arms] == kav.names() + ["keras_adam"]
    assert all(a.learning_rate is None for a in arms)  # each optimizer's own default


def test_default_learning_rates_are_the_classes_defaults():
    import keras_adam_variants as kav

    rates = compare.validate(compare.default_arms(), "digits_mlp")
    for name in kav.names():
        assert rates[name] == pytest.approx(kav.get(name)().get_config()["learning_rate"])
    assert rates["Adadelta"] == 1.0 and rates["Adagrad"] == 0.01


def test_seeds_and_optimizer_parsing():
    assert compare.parse_seeds("3") == [0, 1, 2]
    assert compare.parse_seeds("4,9") == [4, 9]
    assert compare.parse_seeds("7,") == [7]
    for bad in ("0", "a", "1,1", ","):
        with pytest.raises(Exception):
            compare.parse_seeds(bad)
    assert [a.label for a in compare.arms_from_names(["amsgrad", "KERAS_ADAM"])] == [
        "AMSGrad", "keras_adam"]
    with pytest.raises(SystemExit, match="unknown optimizer 'adamm'"):
        compare.arms_from_names(["adamm"])
    with pytest.raises(SystemExit, match="listed twice"):
        compare.arms_from_names(["adam", "Adam"])


def test_display_table_joins_mean_and_std():
    t = Table(compare.COLUMNS, [{"optimizer": "A", "val_loss_mean": 0.5, "val_loss_std": 0.25,
                                 "val_accuracy_mean": float("nan"), "seeds": 2, "failed": 0}])
    shown = compare.display_table(t)
    assert "val_loss_std" not in shown.columns and "failed" not in shown.columns
    assert shown.rows[0]["val_loss"] == "0.5000 ± 0.2500"
    assert shown.rows[0]["val_accuracy"] == "nan (diverged)"


def test_aggregation_and_tables():
    assert mean_std([1.0, 3.0]) == (2.0, 1.0)
    assert np.isnan(mean_std([1.0, float("nan")])[0])
    assert fmt_mean_std([1.0, 3.0], 2) == "2.00 ± 1.00"
    assert fmt_mean_std([float("nan")]) == "nan (diverged)"
    t = Table(["a", "b"], [{"a": "x|y", "b": 0.5}])
    assert t.to_csv() == "a,b\nx|y,0.5\n"
    assert t.to_markdown().splitlines()[2] == "| x\\|y | 0.5 |"


@pytest.mark.slow
def test_tiny_compare_logs_nested_runs_and_parent_artifacts(tmp_path, digits_data_dir):  # noqa: F811
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    result = compare.run_cli(["--optimizers", "adam,keras_adam", "--seeds", "1", "--epochs", "1",
                              "--tracking-uri", uri, "--experiment", "test-compare",
                              "--data-dir", digits_data_dir, "--workers", "1"])
    client = mlflow.MlflowClient(uri)
    runs = mlflow.search_runs(experiment_names=["test-compare"], output_format="list")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.parent_run_id]
    assert [p.info.run_id for p in parents] == [result.parent_run_id]
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    assert sorted(c.data.params["optimizer"] for c in children) == ["Adam", "keras_adam"]
    # Each child: its learning rate as a number, final metrics, no model unless --log-model.
    for child in children:
        assert float(child.data.params["optimizer_learning_rate"]) == pytest.approx(0.001, rel=1e-7)  # Keras: float32
        assert {"val_loss", "val_accuracy", "loss"} <= set(child.data.metrics)
        assert "model" not in {a.path for a in client.list_artifacts(child.info.run_id)}

    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    params = parent.data.params
    assert params["workload"] == "digits_mlp"
    assert params["optimizers"] == "Adam,keras_adam"
    assert params["seeds"] == "0" and params["epochs"] == "1"
    assert float(params["lr.Adam"]) == 0.001
    artifacts = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {"compare_table.csv", "compare_table.md", "learning_curves.png",
            "histories.json"} <= artifacts
    # Artifacts land next to the SQLite database, whatever the working directory.
    assert parent.info.artifact_uri.removeprefix("file://").startswith(f"{tmp_path}/mlruns/artifacts/")

    table_path = client.download_artifacts(result.parent_run_id, "compare_table.csv",
                                           str(tmp_path))
    with open(table_path) as f:
        ordered = list(csv.DictReader(f))
    rows = {r["optimizer"]: r for r in ordered}
    assert set(rows) == {"Adam", "keras_adam"}
    # Numeric columns, mean and std apart, sorted by the mean final validation loss.
    losses = [float(r["val_loss_mean"]) for r in ordered]
    assert losses == sorted(losses)
    assert all(float(r["val_loss_std"]) == 0.0 and r["seeds"] == "1" for r in ordered)
    # The table holds what the child runs logged.
    for child in children:
        label = child.data.params["optimizer"]
        assert float(rows[label]["val_loss_mean"]) == pytest.approx(
            child.data.metrics["val_loss"], abs=1e-5)
    # A few summary metrics, not one per optimizer and key.
    assert set(parent.data.metrics) == {"best_val_loss", "best_val_accuracy", "runs_finished",
                                        "runs_failed", "study_wall_s"}
    assert parent.data.metrics["best_val_loss"] == pytest.approx(losses[0], abs=1e-5)
    assert parent.data.tags["best_optimizer"] == ordered[0]["optimizer"]
    with open(client.download_artifacts(result.parent_run_id, "histories.json",
                                        str(tmp_path))) as f:
        histories = json.load(io.StringIO(f.read()))
    assert {h["run_id"] for h in histories} == {c.info.run_id for c in children}


def test_bad_optimizer_argument_fails_before_any_run(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    arms = [compare.Arm("Adam", "adam", None, {"beta_3": 0.9})]
    with pytest.raises(ValueError, match="beta_3"):
        compare.run_study(arms, seeds=[0], epochs=1, tracking_uri=uri, experiment="never")
    assert not os.path.exists(f"{tmp_path}/mlflow.db")  # nothing was created
