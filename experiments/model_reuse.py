"""Reuse one compiled model across the seeds of one optimizer: trace the train step once.

Tracing ``model.fit``'s train and test functions is the largest fixed cost of a short run (about
1.5-2 s of a 4.6 s digits run on 2 cores; the 10 epochs take ~0.9 s). Seeds of one optimizer
train the same graph: only the initial weights and the data order differ. :class:`CompiledModels`
keeps, per process, one compiled model per (workload, input shape, optimizer class and config,
loss, jit) and, when asked again, puts it back into the exact state a fresh build with the new
seed would have: the weights of a model built after ``keras.utils.set_random_seed(seed)``, the
optimizer's variables (iterations and every slot) of a freshly built optimizer, and
``stop_training`` cleared. Keras keeps the traced ``train_function`` / ``test_function`` of the
model, so the next ``fit`` does not trace again. The values trained are the same as with a fresh
model (``tests/test_parallel.py`` checks it value for value).

Runner hook (``experiments/train.py`` builds its model inline today)::

    def run(config, parent_run_id=None, callbacks=(), models=None):
        ...
        with scope():
            if models is not None:
                model, optimizer = models.get(config.seed, build, key=model_key(config, jit))
            else:
                model, optimizer = build()

where ``build()`` is the existing three lines (``set_random_seed`` is already called before
them): build the workload's model, build the optimizer, ``model.compile(...)``, returning
``(model, optimizer)``. Resuming from a checkpoint loads weights after this, as today. Not for
``strategy="mirrored"`` (pass ``models=None`` there).
"""

from __future__ import annotations

import json


def model_key(config, jit: bool) -> str:
    """The cache key of a run's compiled model: what fixes the traced graph (everything but the
    seed, the epochs and what is only logged)."""
    return json.dumps({"workload": config.workload, "optimizer": config.optimizer,
                       "learning_rate": config.learning_rate, "opt": config.opt,
                       "batch_size": config.batch_size, "jit": jit, "device": config.device,
                       "data_dir": config.data_dir}, sort_keys=True, default=repr)


class CompiledModels:
    """Per-process cache of compiled ``(model, optimizer)`` pairs, one per key (see the module
    doc). ``hits`` and ``misses`` count the calls of :meth:`get`."""

    def __init__(self, max_models: int = 4):
        self.max_models = max_models
        self._models: dict[str, tuple] = {}
        self.hits = 0
        self.misses = 0

    def get(self, seed: int, build, key: str):
        """``(model, optimizer)`` for ``key``, in the state ``build()`` gives right after
        ``keras.utils.set_random_seed(seed)``. ``build`` returns a new compiled
        ``(model, optimizer)``; it is called on a miss, and on a hit to make the fresh weights
        and optimizer state (cheap: no tracing), which are then copied into the cached pair."""
        import keras

        keras.utils.set_random_seed(seed)
        cached = self._models.get(key)
        if cached is None:
            self.misses += 1
            model, optimizer = build()
            if len(self._models) >= self.max_models:
                self._models.pop(next(iter(self._models)))
            self._models[key] = (model, optimizer)
            return model, optimizer
        self.hits += 1
        model, optimizer = cached
        fresh_model, fresh_optimizer = build()
        model.set_weights(fresh_model.get_weights())
        if optimizer.built:
            fresh_optimizer.build(fresh_model.trainable_variables)
            for mine, new in zip(optimizer.variables, fresh_optimizer.variables, strict=True):
                mine.assign(new)
        model.stop_training = False
        return model, optimizer
