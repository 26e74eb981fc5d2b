"""Adagrad (Duchi, Hazan & Singer, 2011) as the seed writes it: ε outside the root."""

from keras import initializers, ops

from keras_adam_variants._base import KavOptimizer
from keras_adam_variants._registry import register
from keras_adam_variants._validation import FLOAT32_TINY, check_epsilon, check_non_negative


@register
class Adagrad(KavOptimizer):
    """Adagrad: per-parameter rates from the sum of all past squared gradients.

    The update, for a gradient g (the seed, §3; Duchi et al. 2011, the diagonal form)::

        G ← G + g²            (G starts at initial_accumulator_value)
        θ ← θ − lr · g / (√G + ε)

    Difference from `keras.optimizers.Adagrad` (and optax's ``adagrad``): Keras puts ε inside the
    root, √(G + ε), and starts G at 0.1. With ``initial_accumulator_value=0.1`` and ε = 0 the two
    coincide. This class matches PyTorch's `torch.optim.Adagrad` (with lr_decay = 0).

    `effective_learning_rate`: lr / (√G + ε), which only decreases for a constant lr;
    `effective_step`: that rate times the ``gradient`` it is given.

    Args:
        learning_rate: a float > 0, a `keras.optimizers.schedules.LearningRateSchedule` or a
            callable with no arguments returning the rate. Defaults to 0.01.
        initial_accumulator_value: G's starting value, ≥ 0. Defaults to 0.0 (the seed).
        epsilon: ε ≥ 1e-30, or 0 when initial_accumulator_value > 0 (G never falls below it,
            so √G + ε stays > 0; see "Bad input" below). Added to √G. Defaults to 1e-10.
    {{base_arguments}}

    Reference: J. Duchi, E. Hazan and Y. Singer, "Adaptive Subgradient Methods for Online Learning
    and Stochastic Optimization", JMLR 12, 2011.
    """

    _HYPERPARAMETERS = ("initial_accumulator_value", "epsilon")

    def __init__(self, learning_rate=0.01, initial_accumulator_value=0.0, epsilon=1e-10, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.initial_accumulator_value = check_non_negative(
            "initial_accumulator_value", initial_accumulator_value
        )
        # G never falls below its start, so a positive start keeps √G + ε > 0 even with ε = 0.
        self.epsilon = check_epsilon(
            epsilon, zero_allowed=self.initial_accumulator_value >= FLOAT32_TINY
        )

    def _denominator_floors(self):
        return {
            "epsilon": self.epsilon,
            "initial_accumulator_value": self.initial_accumulator_value,
        }

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators = self.add_optimizer_variables(
            var_list, "accumulator", initializers.Constant(self.initial_accumulator_value)
        )

    def update_step(self, gradient, variable, learning_rate):
        g = self._dense(gradient, variable)
        lr = ops.cast(learning_rate, variable.dtype)
        accumulator = self._slot(self._accumulators, variable)
        fused = self._fused_for(variable)
        if fused is not None:  # one TensorFlow kernel, exactly this formula
            fused.tf().raw_ops.ResourceApplyAdagradV2(
                var=fused.handle(variable),
                accum=fused.handle(accumulator),
                lr=lr,
                epsilon=ops.cast(self.epsilon, variable.dtype),
                grad=g,
            )
            return
        self.assign_add(accumulator, ops.square(g))
        self.assign_sub(
            variable, ops.divide(ops.multiply(lr, g), ops.add(ops.sqrt(accumulator), self.epsilon))
        )

    def _effective_learning_rate(self, variable, lr):
        accumulator = self._slot(self._accumulators, variable)
        return ops.divide(lr, ops.add(ops.sqrt(accumulator), self.epsilon))

    def _effective_step(self, variable, lr, gradient):
        g = self._given_gradient(gradient, variable)
        return ops.multiply(self._effective_learning_rate(variable, lr), g)
