"""AdaptiveLRLogger in a real training run, logging to a real MLflow SQLite store in tmp_path."""

import re
import struct
import threading

import keras
import numpy as np
import pytest

import keras_adam_variants as kav

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("callbacks", artifact_location=str(tmp_path / "artifacts"))
    mlflow.set_experiment(experiment_id=experiment)
    yield MlflowClient(uri)
    if mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def _fit(optimizer, callback, steps_per_epoch=30, epochs=2, take_steps=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(3, name="logits"),
        ]
    )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps_per_epoch * 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, len(x))
    if take_steps is not None:  # the same run, stopped early
        x, y = x[: 8 * take_steps], y[: 8 * take_steps]
    callbacks = [callback] if callback else []
    model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
    return model


def _layer_variables(model, layer):
    return [v for v in model.trainable_variables if v.path.split("/")[-2] == layer]


class _Watched(kav.callbacks.AdaptiveLRLogger):
    """Records the threads that read `Callback.model` (on JAX, a read syncs the trainer's state)."""

    readers = set()

    @property
    def model(self):
        self.readers.add(threading.current_thread().name)
        return super().model


def test_logs_effective_lr_statistics_and_histograms(tracking):
    callback = _Watched(every_n_steps=10)
    with mlflow.start_run() as run:
        model = _fit(kav.Adam(learning_rate=0.01), callback)
    # Only fit's thread reads the model, never the logging thread (tests/test_backends.py: JAX).
    assert callback.readers == {threading.current_thread().name}
    client, run_id = tracking, run.info.run_id
    metrics = client.get_run(run_id).data.metrics
    for layer in ("hidden", "logits"):
        for key in ("p05", "p50", "p95"):
            assert f"effective_lr/{layer}/{key}" in metrics
        assert f"update_ratio/{layer}" in metrics
        assert f"zero_step_fraction/{layer}" in metrics
    history = client.get_metric_history(run_id, "effective_lr/hidden/p50")
    assert [m.step for m in history] == [10, 20, 30, 40, 50, 60]

    # The last logged values are those of the final state (the last step was a logged one).
    optimizer = model.optimizer
    for layer in ("hidden", "logits"):
        variables = _layer_variables(model, layer)
        rates = np.concatenate([optimizer.effective_learning_rate(v).numpy().ravel() for v in variables])
        for q in (5, 50, 95):
            logged = client.get_metric_history(run_id, f"effective_lr/{layer}/p{q:02d}")[-1].value
            np.testing.assert_allclose(logged, np.percentile(rates, q), rtol=1e-5)
        ratio = client.get_metric_history(run_id, f"update_ratio/{layer}")[-1].value
        assert 0 < ratio < 0.1
        fraction = client.get_metric_history(run_id, f"zero_step_fraction/{layer}")[-1].value
        assert 0 <= fraction < 0.5
    # Adam's p95 rate is at most lr/ε-ish and p05 at least… ordered.
    assert metrics["effective_lr/hidden/p05"] <= metrics["effective_lr/hidden/p50"] <= metrics["effective_lr/hidden/p95"]

    artifacts = [a.path for a in client.list_artifacts(run_id, "effective_lr")]
    assert artifacts == ["effective_lr/epoch_001.png", "effective_lr/epoch_002.png"]
    local = client.download_artifacts(run_id, "effective_lr/epoch_002.png")
    with open(local, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert width > 100 and height > 100
    assert callback.seconds > 0


def test_update_ratio_is_the_measured_step(tracking):
    """update_ratio = ‖Δθ‖/‖θ‖ of the logged step, computed here from the weights themselves."""
    callback = kav.callbacks.AdaptiveLRLogger(every_n_steps=7, histogram=False)
    with mlflow.start_run() as run:
        model = _fit(kav.SGD(learning_rate=0.1), callback, steps_per_epoch=7, epochs=1)
    # SGD: the effective rate is lr everywhere.
    assert tracking.get_run(run.info.run_id).data.metrics["effective_lr/hidden/p50"] == pytest.approx(0.1)
    # Replay: the same run stopped one step short gives the weights before the logged step.
    before = _fit(kav.SGD(learning_rate=0.1), None, steps_per_epoch=7, epochs=1, take_steps=6)
    for layer in ("hidden", "logits"):
        after_w = np.concatenate([w.numpy().ravel() for w in _layer_variables(model, layer)])
        before_w = np.concatenate([w.numpy().ravel() for w in _layer_variables(before, layer)])
        expected = np.linalg.norm(after_w - before_w) / np.linalg.norm(after_w)
        logged = tracking.get_metric_history(run.info.run_id, f"update_ratio/{layer}")[-1].value
        assert logged == pytest.approx(expected, rel=1e-4)
    assert not tracking.list_artifacts(run.info.run_id, "effective_lr")
    assert model.optimizer.iterations.numpy() == 7


def test_works_with_a_keras_optimizer_logging_update_metrics_only(tracking):
    callback = kav.callbacks.AdaptiveLRLogger(every_n_steps=5)
    with mlflow.start_run() as run:
        _fit(keras.optimizers.Adam(), callback, steps_per_epoch=10, epochs=1)
    metrics = tracking.get_run(run.info.run_id).data.metrics
    assert "update_ratio/hidden" in metrics and "zero_step_fraction/logits" in metrics
    assert not any(k.startswith("effective_lr/") for k in metrics)


def test_needs_an_active_run_and_a_valid_interval(tracking):
    with pytest.raises(ValueError, match=r"`every_n_steps` must be an integer >= 1; received every_n_steps=0"):
        kav.callbacks.AdaptiveLRLogger(every_n_steps=0)
    with pytest.raises(RuntimeError, match="active MLflow run"):
        _fit(kav.Adam(), kav.callbacks.AdaptiveLRLogger(), steps_per_epoch=2, epochs=1)


# -- MlflowLogger: autolog's names -----------------------------------------------------------------


def _classifier_fit(callbacks, epochs=3):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer=kav.AMSGrad(learning_rate=0.01), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 4)).astype(np.float32), rng.integers(0, 3, 32)
    model.fit(x, y, epochs=epochs, batch_size=8, validation_data=(x, y), verbose=0,
              callbacks=callbacks)
    return model


def test_mlflow_logger_uses_autologs_names_and_steps(tracking):
    """The same fit autologged and logged by MlflowLogger: every optimizer param and epoch
    metric autolog writes is there under the same name, with the same steps (epochs from 0)."""
    mlflow.keras.autolog(log_models=False, silent=True)
    try:
        with mlflow.start_run() as auto:
            _classifier_fit([])
    finally:
        mlflow.keras.autolog(disable=True)
    with mlflow.start_run() as ours:
        _classifier_fit([kav.callbacks.MlflowLogger(params={"batch_size": 8})])
    auto_run, our_run = tracking.get_run(auto.info.run_id), tracking.get_run(ours.info.run_id)

    auto_optimizer = {k: v for k, v in auto_run.data.params.items() if k.startswith("optimizer_")}
    # autolog: the instance's name, which Keras makes unique within a process (ams_grad_3)
    assert re.fullmatch(r"ams_grad(_\d+)?", auto_optimizer["optimizer_name"])
    assert our_run.data.params["optimizer_name"] == "keras_adam_variants.AMSGrad"
    assert set(auto_optimizer) == {k for k in our_run.data.params if k.startswith("optimizer_")}
    for key, value in auto_optimizer.items():
        if key != "optimizer_name":
            assert our_run.data.params[key] == value, key
    for key in ("epochs", "batch_size"):
        assert our_run.data.params[key] == auto_run.data.params[key]

    epoch_metrics = [k for k in auto_run.data.metrics if not k.startswith("validation_")]
    assert sorted(epoch_metrics) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    for key in epoch_metrics:
        auto_history = tracking.get_metric_history(auto.info.run_id, key)
        our_history = tracking.get_metric_history(ours.info.run_id, key)
        assert [m.step for m in our_history] == [m.step for m in auto_history] == [0, 1, 2]
        np.testing.assert_allclose([m.value for m in our_history], [m.value for m in auto_history],
                                   rtol=1e-6)
    assert [m.value for m in tracking.get_metric_history(ours.info.run_id, "learning_rate")] == \
        pytest.approx([0.01] * 3)
    assert len(tracking.get_metric_history(ours.info.run_id, "epoch_time")) == 3
    assert [a.path for a in tracking.list_artifacts(ours.info.run_id)] == ["model_summary.txt"]


def test_mlflow_logger_writes_to_any_sink():
    """A sink is any object with log_params(dict) and log_metrics(triples): no MLflow run needed."""

    class Recorder:
        def __init__(self):
            self.params, self.triples = {}, []

        def log_params(self, params):
            self.params.update(params)

        def log_metrics(self, triples):
            self.triples += triples

    sink = Recorder()
    _classifier_fit([kav.callbacks.MlflowLogger(sink=sink)], epochs=2)
    assert sink.params["optimizer_name"] == "keras_adam_variants.AMSGrad"
    assert sink.params["optimizer_beta_2"] == 0.999 and sink.params["epochs"] == 2
    assert sorted({k for k, _, _ in sink.triples}) == [
        "accuracy", "epoch_time", "learning_rate", "loss", "val_accuracy", "val_loss"]
    assert sorted({s for _, _, s in sink.triples}) == [0, 1]


def test_mlflow_logger_needs_a_run_or_a_sink(tracking):
    with pytest.raises(RuntimeError, match="active MLflow run.*sink="):
        _classifier_fit([kav.callbacks.MlflowLogger()], epochs=1)


def test_qualified_names():
    assert kav.callbacks.qualified_name(kav.Adam()) == "keras_adam_variants.Adam"
    assert kav.callbacks.qualified_name(keras.optimizers.Adam) == "keras.optimizers.Adam"
    wrapped = keras.optimizers.LossScaleOptimizer(kav.Yogi())
    assert kav.callbacks.optimizer_params(wrapped)["optimizer_name"] == "keras_adam_variants.Yogi"
