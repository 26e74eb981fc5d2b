"""``python -m experiments.sweep``: config checking (every kind of mistake is named) and a tiny
sweep end to end (TFDS digits, Keras training, a temporary SQLite MLflow store)."""

import csv
import glob
import os
import textwrap

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import mlflow  # noqa: E402
import pytest  # noqa: E402

from experiments import sweep  # noqa: E402
from tests._experiment_helpers import REPO, digits_data_dir  # noqa: E402,F401

GOOD = {"workload": "digits_mlp", "optimizers": ["adam", "sgd"], "learning_rate": [1e-3, 1e-1]}


def errors_of(raw) -> str:
    with pytest.raises(sweep.SweepConfigError) as info:
        sweep.parse_config(raw, source="t.toml")
    return str(info.value)


def test_unknown_key_is_named_with_the_closest_valid_key():
    message = errors_of({**GOOD, "optimisers": ["adam"]})
    assert "unknown key 'optimisers'; did you mean 'optimizers'?" in message
    message = errors_of({**GOOD, "learning_rate": {"min": 1e-4, "max": 1.0, "nun": 3}})
    assert "unknown key 'nun' in 'learning_rate'; did you mean 'num'?" in message
    assert "needs 'num'" in message


def test_unknown_names_are_named_with_a_suggestion():
    message = errors_of({**GOOD, "workload": "digits_mpl", "optimizers": ["adam", "AMSGrd"]})
    assert "unknown workload 'digits_mpl'; did you mean 'digits_mlp'?" in message
    assert "unknown optimizer 'AMSGrd' in 'optimizers'; did you mean 'AMSGrad'?" in message


@pytest.mark.parametrize("key, value, expected", [
    ("epochs", "5", "'epochs' must be an integer >= 1, got a string '5'"),
    ("epochs", 0, "'epochs' must be an integer >= 1"),
    ("batch_size", 2.5, "'batch_size' must be an integer >= 1"),
    ("jit", 1, "'jit' must be true or false, got an integer 1"),
    ("seeds", 0, "'seeds' must be a count >= 1"),
    ("seeds", [1, 1], "'seeds' must be a count >= 1 or a non-empty list of distinct"),
    ("optimizers", [], "'optimizers' must be a non-empty list"),
    ("optimizers", ["adam", "Adam"], "listed twice"),
    ("learning_rate", [], "grid is empty"),
    ("learning_rate", [1e-3, -1.0], "grid values must be numbers > 0, got -1.0"),
    ("learning_rate", 0.1, "'learning_rate' must be a list (a grid) or a table"),
    ("learning_rate", {"min": 1.0, "max": 0.1, "num": 3}, "must be below"),
    ("learning_rate", {"min": 0, "max": 0.1, "num": 3}, "'learning_rate.min' must be a number > 0"),
    ("learning_rate", {"min": 1e-3, "max": 0.1, "num": 0}, "'learning_rate.num' must be an integer"),
    ("options", {"sgd": {"momentum": 2.0}}, "[options.sgd]: "),
    ("options", {"adam": {"beta_3": 0.9}}, "beta_3"),
    ("options", {"rmsprop": {"rho": 0.9}}, "names an optimizer that is not in 'optimizers'"),
    ("options", {"sgd": {"learning_rate": 0.1}}, "must not set 'learning_rate'"),
])
def test_wrong_types_and_ranges_are_reported(key, value, expected):
    assert expected in errors_of({**GOOD, key: value})


def test_missing_keys_and_all_errors_at_once():
    message = errors_of({"epochs": -1, "colour": "red"})
    for expected in ("missing required key 'workload'", "missing required key 'optimizers'",
                     "missing required key 'learning_rate'", "unknown key 'colour'",
                     "'epochs' must be an integer >= 1"):
        assert expected in message


def test_log_uniform_range_is_seeded_and_inside_the_range():
    spec = {"min": 1e-4, "max": 1.0, "num": 5, "seed": 7}
    a = sweep.parse_config({**GOOD, "learning_rate": spec}).learning_rates
    b = sweep.parse_config({**GOOD, "learning_rate": spec}).learning_rates
    c = sweep.parse_config({**GOOD, "learning_rate": {**spec, "seed": 8}}).learning_rates
    assert a == b != c
    assert len(a) == 5 and a == sorted(a) and all(1e-4 <= v <= 1.0 for v in a)


def test_shipped_configs_are_valid():
    paths = glob.glob(os.path.join(REPO, "experiments", "configs", "*.toml"))
    assert paths
    for path in paths:
        cfg = sweep.load_config(path)
        assert cfg.optimizers and cfg.learning_rates


def test_cli_reports_a_bad_file_without_a_traceback(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('workload = "digits_mlp"\noptimizers = ["adam"]\nlearning_rate = [0.1]\n'
                    'epoch = 3\n')
    assert sweep.main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'epoch'; did you mean 'epochs'?" in err and "Traceback" not in err
    path.write_text("workload = \n")
    assert sweep.main(["--config", str(path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


@pytest.mark.slow
def test_tiny_sweep_logs_nested_runs_and_best_learning_rates(tmp_path, digits_data_dir):  # noqa: F811
    config = tmp_path / "tiny.toml"
    config.write_text(textwrap.dedent("""
        name = "tiny"
        experiment = "test-sweep"
        workload = "digits_logreg"
        optimizers = ["adam", "sgd"]
        learning_rate = [1e-3, 1e-1]
        seeds = 1
        epochs = 1
        batch_size = 128
        [options.sgd]
        momentum = 0.9
    """))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result, best = sweep.run_cli(["--config", str(config), "--tracking-uri", uri,
                                  "--data-dir", digits_data_dir, "--workers", "1"])
    client = mlflow.MlflowClient(uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["learning_rates"] == "0.001,0.1"
    children = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(children) == 4
    assert sorted((c.data.params["optimizer"], float(c.data.params["optimizer_learning_rate"]))
                  for c in children) == [("adam", 0.001), ("adam", 0.1), ("sgd", 0.001),
                                         ("sgd", 0.1)]
    assert all(c.data.params["optimizer_momentum"] == "0.9" for c in children
               if c.data.params["optimizer"] == "sgd")

    # The best learning rate is the one whose child run has the lowest final validation loss.
    for label, name in (("Adam", "adam"), ("SGD", "sgd")):
        mine = [c for c in children if c.data.params["optimizer"] == name]
        winner = min(mine, key=lambda c: c.data.metrics["val_loss"])
        expected = float(winner.data.params["optimizer_learning_rate"])
        assert best[label].learning_rate == expected
        assert parent.data.metrics[f"{label}.best_lr"] == pytest.approx(expected)
        assert float(parent.data.tags[f"best_lr.{label}"]) == expected

    artifacts = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {"sweep_best.csv", "sweep_best.md", "sweep_table.csv", "val_loss_vs_lr.png",
            "learning_curves.png", "sweep_config.toml"} <= artifacts
    with open(client.download_artifacts(result.parent_run_id, "sweep_best.csv",
                                        str(tmp_path))) as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["optimizer"] for r in rows) == ["Adam", "SGD"]
    losses = [float(r["val_loss_mean"]) for r in rows]  # numbers, best optimizer first
    assert losses == sorted(losses)
