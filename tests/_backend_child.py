"""Child process of tests/test_backends.py: the optimizer matrix on one Keras backend.

Usage: KERAS_BACKEND=jax python -m tests._backend_child OUT.json [SPEC_ID ...]

KERAS_BACKEND is read once per process, so each backend runs here, in its own process. For every
row of tests/specs.py (or the rows named) it runs, without TensorFlow:

- ``eager``:     `apply_gradients` step by step, against the row's NumPy reference;
- ``jit``:       `model.fit` of the probe model with its compiled train step (jax.jit on JAX;
                 on PyTorch Keras' own train step, see ``JIT``), against the reference;
- ``config``:    get_config / from_config / keras.optimizers.serialize round trip;
- ``save``:      a `.keras` save, `keras.saving.load_model` with no custom objects, and the
                 reloaded model continuing exactly as the original;
- ``embedding``: an `Embedding` model (repeated rows, rows never touched) trained by
                 `model.fit`, against the reference run on the dense gradient;
- ``effective``: `effective_step` equals the last step taken (as tests/test_effective_lr.py),
                 and `effective_learning_rate` is returned for the parent to compare with
                 TensorFlow's.

With no rows named (or with ``callbacks`` among them) it also runs `AdaptiveLRLogger` (logging to a SQLite MLflow store,
``ADAPTIVE_LR_FITS`` fits, checking that only fit's thread reads the callback's model) and `MlflowLogger` in a small fit. Writes ``{"backend", "callbacks": {name: "ok" | error text}, "modules", "results": {spec_id: {check: "ok" | error text}},
"effective_lr": {spec_id: nested list}}`` to OUT.json.
"""

import json
import os
import sys
import tempfile
import time
import traceback

import numpy as np

STEPS = 40  # steps per reference check: enough to separate conventions (≥1e-3), cheap eagerly
TOLERANCE = 1e-5  # as tests/test_all_optimizers.py
# model.fit's compiled step: XLA on TensorFlow, jax.jit on JAX. PyTorch's jit_compile=True is
# torch.compile, ~40 s per optimizer on 2 CPU cores, so there the compiled-step check runs Keras'
# ordinary (eager) PyTorch train step.
JIT = {"tensorflow": True, "jax": True, "torch": False}
# Fits of the AdaptiveLRLogger check on JAX (one elsewhere), each a new model, run and callback. Its
# old defect on JAX (the logging thread read `Callback.model`, whose JAX sync could attach buffers
# the running train step had donated) failed 13 of 34 fits in one process, measured, though never a
# process's first fit (0 of 16): 6 fits miss it with probability ~0.62**5 ≈ 0.1 (4 of 4 children
# failed), and the check that only fit's thread reads the model fails it every time.
ADAPTIVE_LR_FITS = 6


def main(argv):
    import keras

    from tests.conftest import gradient_sequence, identity_loss, initial_theta, max_deviation, probe_model
    from tests.specs import SPECS

    import keras_adam_variants as kav

    out_path, wanted = argv[0], set(argv[1:])
    backend = keras.backend.backend()
    theta0, grads = initial_theta(), gradient_sequence()[:STEPS]
    results, rates, seconds = {}, {}, {}

    def reference(spec, optimizer, theta, g):
        return spec.reference(theta, g, **spec.hyper(optimizer))

    def check_eager(spec):
        optimizer = spec.make()
        variable = keras.Variable(theta0)
        trajectory = [theta0.astype(np.float64)]
        for g in grads:
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
            trajectory.append(np.asarray(keras.ops.convert_to_numpy(variable), np.float64))
        deviation = max_deviation(np.stack(trajectory), reference(spec, optimizer, theta0, grads))
        assert deviation < TOLERANCE, f"max deviation {deviation:.3g} from the reference"

    def check_jit(spec):
        model = probe_model(theta0)
        optimizer = spec.make()
        model.compile(optimizer=optimizer, loss=identity_loss, jit_compile=JIT[backend])
        model.fit(grads, np.zeros(len(grads), np.float32), batch_size=1, epochs=1, shuffle=False,
                  verbose=0)
        assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == len(grads)
        expected = reference(spec, optimizer, theta0, grads)[-1]
        deviation = max_deviation(model.get_weights()[0], expected)
        assert deviation < TOLERANCE, f"max deviation {deviation:.3g} from the reference"

    def check_config(spec):
        optimizer = spec.make()
        config = optimizer.get_config()
        assert spec.cls.from_config(config).get_config() == config
        serialized = keras.optimizers.serialize(optimizer)
        assert serialized["registered_name"] == f"keras_adam_variants>{spec.cls.__name__}"
        again = keras.optimizers.deserialize(serialized)
        assert type(again) is spec.cls and again.get_config() == config

    def check_save(spec):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(3)])
        model.compile(optimizer=spec.make(), loss="mse", jit_compile=False)  # compiles are slow on JAX
        x, y = grads[:16, 0], grads[:16, 1, :3]
        model.fit(x, y, batch_size=4, shuffle=False, verbose=0)
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "model.keras")
            model.save(path)
            reloaded = keras.saving.load_model(path)  # no custom objects: registered names
        assert type(reloaded.optimizer) is spec.cls
        assert len(reloaded.optimizer.variables) == len(model.optimizer.variables)
        for model_ in (model, reloaded):
            model_.fit(x, y, batch_size=4, shuffle=False, verbose=0)
        for a, b in zip(model.get_weights(), reloaded.get_weights()):
            np.testing.assert_array_equal(a, b)

    def check_embedding(spec):
        rows, dim, ids_per_example = 12, 4, 6
        rng = np.random.default_rng(2)
        table = rng.standard_normal((rows, dim)).astype(np.float32)
        ids = rng.integers(0, rows - 2, size=(10, ids_per_example))  # rows 10, 11 never touched
        ids[:, 1] = ids[:, 0]  # repeated rows within an example
        coefficients = rng.standard_normal((ids_per_example, dim)).astype(np.float32)

        inputs = keras.Input((ids_per_example,), dtype="int32")
        embedded = keras.layers.Embedding(rows, dim, embeddings_initializer=keras.initializers.Constant(table))(inputs)
        output = keras.layers.Lambda(
            lambda e: keras.ops.sum(e * keras.ops.convert_to_tensor(coefficients), axis=(1, 2)))(embedded)
        model = keras.Model(inputs, output)
        optimizer = spec.make()
        model.compile(optimizer=optimizer, loss=identity_loss, jit_compile=False)
        model.fit(ids, np.zeros(len(ids), np.float32), batch_size=1, shuffle=False, verbose=0)
        dense = np.zeros((len(ids), rows, dim), np.float32)  # d loss / d table per step
        for step, example in enumerate(ids):
            np.add.at(dense[step], example, coefficients)
        expected = reference(spec, optimizer, table, dense)[-1]
        deviation = max_deviation(model.get_weights()[0], expected)
        assert deviation < TOLERANCE, f"max deviation {deviation:.3g} from the reference"

    def check_effective(spec):
        overrides = {"weight_decay": 0.0} if "weight_decay" in spec.cls._HYPERPARAMETERS else {}
        optimizer = spec.make(**overrides)
        variable = keras.Variable(theta0)
        for g in grads:
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), variable)])
        rate = keras.ops.convert_to_numpy(optimizer.effective_learning_rate(variable))
        assert rate.shape == theta0.shape, rate.shape
        rates[spec.id] = rate.astype(np.float64).tolist()
        step = keras.ops.convert_to_numpy(
            optimizer.effective_step(variable, keras.ops.convert_to_tensor(grads[-1])))
        if spec.cls is kav.Adadelta:  # reads E[Δ²] after the step: rate × gradient
            np.testing.assert_allclose(step, rate * grads[-1], rtol=1e-6)
            return
        trajectory = reference(spec, optimizer, theta0, grads)
        expected = trajectory[-2] - trajectory[-1]
        error = np.max(np.abs(step - expected))
        assert error <= 1e-4 * np.max(np.abs(expected)), f"effective_step off by {error:.3g}"

    def small_fit(optimizer, callbacks, epochs=2):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu", name="hidden"),
                                  keras.layers.Dense(3, name="logits")])
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((80, 8)).astype(np.float32), rng.integers(0, 3, 80)
        model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
        return model

    def check_adaptive_lr_logger():
        import threading

        import mlflow

        readers = set()  # the threads that read the callback's `model`

        class Watched(kav.callbacks.AdaptiveLRLogger):
            @property
            def model(self):
                readers.add(threading.current_thread().name)
                return super().model

        with tempfile.TemporaryDirectory() as directory:
            mlflow.set_tracking_uri(f"sqlite:///{directory}/mlflow.db")
            try:
                client = mlflow.MlflowClient()
                for fit in range(ADAPTIVE_LR_FITS if backend == "jax" else 1):  # JAX donates buffers
                    with mlflow.start_run() as run:
                        model = small_fit(kav.Adam(learning_rate=0.01), [Watched(every_n_steps=5)])
                    history = client.get_metric_history(run.info.run_id, "effective_lr/hidden/p50")
                    assert [m.step for m in history] == [5, 10, 15, 20], (fit, history)
                    rates = np.concatenate([
                        keras.ops.convert_to_numpy(model.optimizer.effective_learning_rate(v)).ravel()
                        for v in model.trainable_variables if v.path.split("/")[-2] == "hidden"])
                    np.testing.assert_allclose(history[-1].value, np.percentile(rates, 50), rtol=1e-5)
                    pictures = [a.path for a in client.list_artifacts(run.info.run_id, "effective_lr")]
                    assert pictures == ["effective_lr/epoch_001.png", "effective_lr/epoch_002.png"], pictures
                # On JAX, `Callback.model` writes the trainer's state into the model: from any
                # thread but fit's, while a step runs, it can attach buffers the step donated.
                assert readers == {threading.current_thread().name}, f"model read by {sorted(readers)}"
            finally:
                mlflow.set_tracking_uri(None)

    def check_mlflow_logger():
        class Recorder:
            params, triples = {}, []

            def log_params(self, params):
                self.params.update(params)

            def log_metrics(self, triples):
                self.triples += triples

        sink = Recorder()
        small_fit(kav.RAdam(), [kav.callbacks.MlflowLogger(sink=sink)])
        assert sink.params["optimizer_name"] == "keras_adam_variants.RAdam", sink.params
        assert sorted({(k, s) for k, _, s in sink.triples if k == "loss"}) == [("loss", 0), ("loss", 1)]

    checks = {"eager": check_eager, "jit": check_jit, "config": check_config, "save": check_save,
              "embedding": check_embedding, "effective": check_effective}
    for spec in SPECS:
        if wanted and spec.id not in wanted:
            continue
        results[spec.id] = {}
        for name, check in checks.items():
            if name == "embedding" and spec.lazy and backend == "tensorflow":
                results[spec.id][name] = "skipped: lazy by design on TensorFlow's sparse gradients"
                continue
            start = time.perf_counter()
            try:
                check(spec)
                results[spec.id][name] = "ok"
            except Exception as error:  # reported to the parent, which fails with the text
                lines = traceback.format_exception_only(type(error), error)
                results[spec.id][name] = "".join(lines).strip()[-800:]
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
    callbacks = {}
    if not wanted or "callbacks" in wanted:
        for name, check in (("AdaptiveLRLogger", check_adaptive_lr_logger),
                            ("MlflowLogger", check_mlflow_logger)):
            start = time.perf_counter()
            try:
                check()
                callbacks[name] = "ok"
            except Exception as error:
                traceback.print_exc()  # the whole story on stderr, which the parent shows
                lines = traceback.format_exception_only(type(error), error)
                callbacks[name] = "".join(lines).strip()[-800:]
            seconds[name] = time.perf_counter() - start
    with open(out_path, "w") as f:
        json.dump({"backend": backend, "callbacks": callbacks, "modules": sorted(m for m in sys.modules if m.split(".")[0] in
                                                        ("tensorflow", "jax", "torch")
                                                        and "." not in m),
                   "results": results, "effective_lr": rates, "seconds": seconds}, f)


if __name__ == "__main__":
    main(sys.argv[1:])
