"""AdamW (Loshchilov & Hutter, 2019): our Adam with decoupled weight decay on by default."""

from keras_adam_variants._registry import register
from keras_adam_variants.adam import Adam


@register
class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay.

    The update, for a gradient g at step t = 1, 2, … (Loshchilov & Hutter 2019, Algorithm 2,
    with the decay tied to the learning rate as PyTorch's `torch.optim.AdamW`)::

        θ ← θ − lr · λ · θ                 (λ = weight_decay, applied before the Adam step)
        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        m̂ = m / (1 − β1^t)
        v̂ = v / (1 − β2^t)
        θ ← θ − lr · m̂ / (√v̂ + ε)

    The decay is the Keras base class's ``weight_decay`` (it applies exactly θ ← θ − lr·λ·θ
    before every update, for every optimizer of this package); AdamW is our `Adam` with
    ``weight_decay=0.01`` by default, so ``AdamW(weight_decay=λ)`` and ``Adam(weight_decay=λ)``
    take identical steps. `exclude_from_weight_decay` works as in Keras. With a learning-rate
    schedule the decay follows the scheduled rate (PyTorch's convention); the paper's
    Algorithm 2 multiplies λ by a separate schedule multiplier η_t instead.

    Differences: `keras.optimizers.AdamW` uses the same decay but Keras' "ε-hat" Adam step (see
    `Adam`) and ε = 1e-7 by default, and weight_decay 0.004. PyTorch's `AdamW` is this class.

    `effective_learning_rate` and `effective_step` are Adam's (the decay is not included).

    Args:
        learning_rate: a float > 0, a `keras.optimizers.schedules.LearningRateSchedule` or a
            callable with no arguments returning the rate. Defaults to 0.001.
        beta_1: decay rate of the first-moment average, in [0, 1). Defaults to 0.9.
        beta_2: decay rate of the second-moment average, in [0, 1). Defaults to 0.999.
        epsilon: ε ≥ 1e-30 (0 is refused: see "Bad input" below), added to √v̂. Defaults to 1e-8.
        weight_decay: λ ≥ 0, the decoupled decay rate. Defaults to 0.01 (PyTorch's default).
    {{base_arguments}}

    Reference: I. Loshchilov and F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019,
    https://arxiv.org/abs/1711.05101.
    """

    _HYPERPARAMETERS = ("beta_1", "beta_2", "epsilon", "weight_decay")

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        weight_decay=0.01,
        **kwargs,
    ):
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            weight_decay=weight_decay,
            **kwargs,
        )
