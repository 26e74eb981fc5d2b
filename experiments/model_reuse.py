"""Reuse one compiled model across the seeds of one optimizer: trace the train step once.

Tracing ``model.fit``'s train and test functions is the largest fixed cost of a short run (about
1.5-2 s of a 4.6 s digits run on 2 cores; the 10 epochs take ~0.9 s). Seeds of one optimizer
train the same graph: only the initial weights and the data order differ. :class:`CompiledModels`
keeps, per process, one compiled model per (workload, optimizer class and config, batch size,
jit, device, data dir) and, when asked again, puts it back into the exact state a fresh build
with the new seed would have: every variable of a model built after
``keras.utils.set_random_seed(seed)`` (weights and seed-generator states), the optimizer's
variables (iterations, learning rate and every slot) of a freshly built optimizer, and
``stop_training`` cleared. Keras keeps the traced ``train_function`` / ``test_function`` of the
model, so the next ``fit`` does not trace again. The values trained are the same as with a fresh
model (``tests/test_parallel.py`` checks it value for value, and for whole runs of a study).

Used by :func:`experiments.train.run` (its ``models`` argument): studies pass one
:class:`CompiledModels` per process (per thread on a Dask worker; see
:mod:`experiments.parallel`), and schedule the seeds of one optimizer onto one process. Not used
for ``strategy="mirrored"``, for a run that resumes from a checkpoint (it loads its weights into
a fresh build), nor for optimizer arguments that are objects (a schedule: its state is not
known to be the same, so :func:`model_key` gives None).
"""

from __future__ import annotations

import json


PLAIN = (bool, int, float, str, type(None))


def model_key(config, jit: bool) -> str | None:
    """The cache key of a run's compiled model: what fixes the traced graph (everything but the
    seed, the epochs and what is only logged); None (do not reuse) when an optimizer argument
    is not a plain number, string or bool (e.g. a learning-rate schedule object)."""
    if not all(isinstance(v, PLAIN) for v in config.opt.values()):
        return None
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
        for mine, new in zip(model.variables, fresh_model.variables, strict=True):
            mine.assign(new)  # weights and seed-generator states (dropout)
        if optimizer.built:
            fresh_optimizer.build(fresh_model.trainable_variables)
            for mine, new in zip(optimizer.variables, fresh_optimizer.variables, strict=True):
                mine.assign(new)
        model.stop_training = False
        return model, optimizer
