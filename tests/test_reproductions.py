"""Paper reproductions with real parts: Reddi et al. (2018) section 5 with the package's Adam and
AMSGrad (shortened runs), its MLflow logging to a temporary SQLite store, and one tiny Kingma & Ba
section 6.1 comparison on digits."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from experiments import reddi_synthetic as rs  # noqa: E402
from tests._experiment_helpers import digits_data_dir  # noqa: E402,F401


def test_regret_of_the_optimum_is_zero_and_of_the_worst_point_grows():
    g = rs.gradients("deterministic", 101 * 50)
    # Over whole periods the gradients sum to +10 each: x = -1 is optimal, x = +1 the worst.
    assert np.isclose(g.sum(), 10.0 * 50)
    best = rs.average_regret(np.full(g.shape, -1.0), g)
    worst = rs.average_regret(np.full(g.shape, 1.0), g)
    assert abs(best[-1]) < 1e-9
    assert np.isclose(worst[-1], 2 * g.sum() / g.size)


def test_stochastic_problem_is_seeded():
    a, b = rs.gradients("stochastic", 10_000, seed=3), rs.gradients("stochastic", 10_000, seed=3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, rs.gradients("stochastic", 10_000, seed=4))
    assert 0.005 < np.mean(a > 0) < 0.015


@pytest.mark.parametrize("variant", ["adam", "amsgrad", "amsgrad_bc"])
def test_deterministic_adam_goes_to_the_worst_point_amsgrad_to_the_optimum(variant):
    o = rs.run_one("deterministic", variant, steps=200_000)
    assert np.all(np.abs(o.xs) <= 1.0)  # projected onto F = [-1, 1]
    if variant == "adam":
        assert o.x_tail_mean > 0.95, o.x_tail_mean
        assert o.regret_final > 0.2  # R_t/t does not vanish
    else:
        assert o.x_tail_mean < -0.95, o.x_tail_mean
        assert o.regret_final < 0.2


def test_stochastic_adam_goes_to_plus_one_amsgrad_to_minus_one():
    adam = rs.run_one("stochastic", "adam", steps=1_000_000, seed=0)
    amsgrad = rs.run_one("stochastic", "amsgrad", steps=1_000_000, seed=0)
    assert adam.x_tail_mean > 0.9
    assert amsgrad.x_tail_mean < -0.5
    assert amsgrad.regret_final < adam.regret_final


def test_huge_epsilon_removes_the_failure():
    """With ε far above √v̂ (~100 here) Adam is momentum SGD and leaves +1 (see the module doc)."""
    o = rs.run_one("deterministic", "adam", steps=200_000, epsilon=1000.0)
    assert o.x_tail_mean < 0.0


def test_reddi_cli_logs_nested_runs_curves_and_plots(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = rs.main(["--steps", "20000", "--problems", "deterministic",
                      "--variants", "adam,amsgrad", "--log-points", "50",
                      "--tracking-uri", uri, "--experiment", "test-reddi"])
    client = mlflow.MlflowClient(uri)
    parent = client.get_run(result["parent_run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.data.params["variants"] == "adam,amsgrad"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"reddi_x.png", "reddi_regret.png", "reddi_summary.csv",
            "reddi_summary.md"} <= artifacts
    runs = mlflow.search_runs(experiment_names=["test-reddi"], output_format="list")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.params["optimizer"] for r in children) == ["adam", "amsgrad"]
    for child in children:
        history = client.get_metric_history(child.info.run_id, "x")
        assert 20 <= len(history) <= 50
        assert max(m.step for m in history) == 20000
        assert len(client.get_metric_history(child.info.run_id, "avg_regret")) == len(history)


@pytest.mark.slow
def test_kingma_ba_section_6_1_tiny(tmp_path, digits_data_dir):  # noqa: F811
    from experiments import kingma_ba

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = kingma_ba.run_cli(["--section", "6.1", "--optimizers", "adam,sgdnesterov",
                             "--seeds", "1", "--epochs", "1", "--tracking-uri", uri,
                             "--data-dir", digits_data_dir, "--experiment", "test-kb"])
    client = mlflow.MlflowClient(uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.data.params["section"] == "6.1"
    assert parent.data.params["lr_decay"] == "alpha/sqrt(t)"
    assert parent.data.params["workload"] == "digits_logreg"
    children = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    by_name = {r.data.params["optimizer"]: r for r in children}
    assert set(by_name) == {"adam", "sgd"}
    sgd = by_name["sgd"].data.params
    assert sgd["optimizer_momentum"] == "0.9" and sgd["optimizer_nesterov"] == "True"
    assert "InverseSqrtDecay" in sgd["optimizer_learning_rate"]
    # The step size decays as alpha/sqrt(t): after one epoch of 12 steps, 0.01/sqrt(13).
    lr = client.get_metric_history(by_name["sgd"].info.run_id, "learning_rate")
    assert np.isclose(lr[-1].value, 0.01 / np.sqrt(13), rtol=1e-5)
