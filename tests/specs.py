"""THE test matrix: one row per optimizer and option set.

Every generic test (reference agreement in eager / tf.function / XLA / model.fit, config round trip,
save-reload-continue, checkpoints, invalid arguments, dtypes, sparse gradients, distribution) runs
over ``SPECS``. A new optimizer gets the whole suite by adding its file to the package, a function
to ``tests/reference.py`` and a row here.

Row fields:
  id          the pytest id.
  cls         the optimizer class.
  kwargs      constructor arguments of this row (the rest are the class defaults).
  reference   the NumPy transcription in ``tests/reference.py``; it is called with the optimizer's
              hyperparameters (``learning_rate`` and the class's ``_HYPERPARAMETERS``).
  torch       optional: builds the PyTorch optimizer with the same rule from (params, hyper),
              a second, independent reference (a peer library).
  keras       optional: builds a Keras built-in that implements the same formula, a third reference.
  lazy        True for optimizers that update only the rows a sparse gradient touches (LazyAdam):
              sparse gradients then differ from dense ones by design (tests/test_lazy_adam.py).
"""

import dataclasses
from typing import Callable, Optional

import keras

import keras_adam_variants as kav
from tests import reference as ref


@dataclasses.dataclass(frozen=True)
class Spec:
    id: str
    cls: type
    kwargs: dict
    reference: Callable
    torch: Optional[Callable] = None
    keras: Optional[Callable] = None
    lazy: bool = False

    def make(self, **overrides):
        return self.cls(**{**self.kwargs, **overrides})

    def hyper(self, optimizer=None):
        """learning_rate and the class's own hyperparameters, as the reference takes them."""
        optimizer = optimizer or self.make()
        config = optimizer.get_config()
        return {k: config[k] for k in ("learning_rate", *self.cls._HYPERPARAMETERS)}


def _torch():
    import torch

    return torch.optim


def _betas(h):
    return (h["beta_1"], h["beta_2"])


SPECS = [
    Spec(
        "adam",
        kav.Adam,
        {},
        ref.adam,
        torch=lambda p, h: _torch().Adam(p, lr=h["learning_rate"], betas=_betas(h), eps=h["epsilon"]),
    ),
    Spec(
        "adam_tuned",
        kav.Adam,
        dict(learning_rate=0.01, beta_1=0.5, beta_2=0.9, epsilon=1e-6),
        ref.adam,
        torch=lambda p, h: _torch().Adam(p, lr=h["learning_rate"], betas=_betas(h), eps=h["epsilon"]),
    ),
    Spec("amsgrad", kav.AMSGrad, {}, ref.amsgrad),
    Spec(
        "amsgrad_bias_corrected",
        kav.AMSGrad,
        dict(bias_correction=True, beta_2=0.99),
        ref.amsgrad,
        torch=lambda p, h: _torch().Adam(
            p, lr=h["learning_rate"], betas=_betas(h), eps=h["epsilon"], amsgrad=True
        ),
    ),
    Spec(
        "rmsprop",
        kav.RMSprop,
        {},
        ref.rmsprop,
        torch=lambda p, h: _torch().RMSprop(p, lr=h["learning_rate"], alpha=h["rho"], eps=h["epsilon"]),
    ),
    Spec(
        "rmsprop_centered_momentum",
        kav.RMSprop,
        dict(centered=True, momentum=0.9, rho=0.95),
        ref.rmsprop,
        torch=lambda p, h: _torch().RMSprop(
            p,
            lr=h["learning_rate"],
            alpha=h["rho"],
            eps=h["epsilon"],
            momentum=h["momentum"],
            centered=h["centered"],
        ),
    ),
    Spec(
        "adagrad",
        kav.Adagrad,
        {},
        ref.adagrad,
        torch=lambda p, h: _torch().Adagrad(
            p,
            lr=h["learning_rate"],
            eps=h["epsilon"],
            initial_accumulator_value=h["initial_accumulator_value"],
        ),
    ),
    Spec(
        "adagrad_initial_accumulator",
        kav.Adagrad,
        dict(initial_accumulator_value=0.1),
        ref.adagrad,
        torch=lambda p, h: _torch().Adagrad(
            p,
            lr=h["learning_rate"],
            eps=h["epsilon"],
            initial_accumulator_value=h["initial_accumulator_value"],
        ),
    ),
    Spec(
        "adadelta",
        kav.Adadelta,
        {},
        ref.adadelta,
        torch=lambda p, h: _torch().Adadelta(p, lr=h["learning_rate"], rho=h["rho"], eps=h["epsilon"]),
        keras=lambda h: keras.optimizers.Adadelta(
            learning_rate=h["learning_rate"], rho=h["rho"], epsilon=h["epsilon"]
        ),
    ),
    Spec(
        "adamax",
        kav.Adamax,
        {},
        ref.adamax,
        torch=lambda p, h: _torch().Adamax(p, lr=h["learning_rate"], betas=_betas(h), eps=h["epsilon"]),
    ),
    Spec(
        "sgd",
        kav.SGD,
        {},
        ref.sgd,
        torch=lambda p, h: _torch().SGD(p, lr=h["learning_rate"]),
        keras=lambda h: keras.optimizers.SGD(learning_rate=h["learning_rate"]),
    ),
    Spec(
        "sgd_momentum",
        kav.SGD,
        dict(momentum=0.9),
        ref.sgd,
        torch=lambda p, h: _torch().SGD(p, lr=h["learning_rate"], momentum=h["momentum"]),
        keras=lambda h: keras.optimizers.SGD(learning_rate=h["learning_rate"], momentum=h["momentum"]),
    ),
    Spec(
        "sgd_nesterov",
        kav.SGD,
        dict(momentum=0.9, nesterov=True),
        ref.sgd,
        torch=lambda p, h: _torch().SGD(
            p, lr=h["learning_rate"], momentum=h["momentum"], nesterov=True
        ),
        keras=lambda h: keras.optimizers.SGD(
            learning_rate=h["learning_rate"], momentum=h["momentum"], nesterov=True
        ),
    ),
    # -- issue 5: more variants --
    Spec(
        "adamw",
        kav.AdamW,
        {},
        ref.adamw,
        torch=lambda p, h: _torch().AdamW(
            p, lr=h["learning_rate"], betas=_betas(h), eps=h["epsilon"], weight_decay=h["weight_decay"]
        ),
    ),
    Spec(
        "nadam",
        kav.Nadam,
        {},
        ref.nadam,
        torch=lambda p, h: _torch().NAdam(
            p, lr=h["learning_rate"], betas=_betas(h), eps=h["epsilon"], momentum_decay=h["momentum_decay"]
        ),
    ),
    Spec(
        "nadam_keras_schedule",
        kav.Nadam,
        dict(momentum_decay=1.0, epsilon=1e-7),
        ref.nadam,
        torch=lambda p, h: _torch().NAdam(
            p, lr=h["learning_rate"], betas=_betas(h), eps=h["epsilon"], momentum_decay=h["momentum_decay"]
        ),
        keras=lambda h: keras.optimizers.Nadam(
            learning_rate=h["learning_rate"], beta_1=h["beta_1"], beta_2=h["beta_2"], epsilon=h["epsilon"]
        ),
    ),
    Spec(
        "radam",
        kav.RAdam,
        {},
        ref.radam,
        torch=lambda p, h: _torch().RAdam(p, lr=h["learning_rate"], betas=_betas(h), eps=h["epsilon"]),
    ),
    Spec(
        "radam_beta2_0_9",
        kav.RAdam,
        dict(learning_rate=0.01, beta_2=0.9),
        ref.radam,
        torch=lambda p, h: _torch().RAdam(p, lr=h["learning_rate"], betas=_betas(h), eps=h["epsilon"]),
    ),
    Spec("adabelief", kav.AdaBelief, {}, ref.adabelief),
    Spec("yogi", kav.Yogi, {}, ref.yogi),
    Spec(
        "lazy_adam",
        kav.LazyAdam,
        {},
        ref.lazy_adam,
        torch=lambda p, h: _torch().Adam(p, lr=h["learning_rate"], betas=_betas(h), eps=h["epsilon"]),
        lazy=True,
    ),
]

SPEC_IDS = [s.id for s in SPECS]


def by_id(spec_id):
    return next(s for s in SPECS if s.id == spec_id)
