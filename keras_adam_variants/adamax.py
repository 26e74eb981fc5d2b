"""Adamax (Kingma & Ba, 2015, §7.1): Adam with the infinity norm, ε inside the max."""

from keras import ops

from keras_adam_variants._base import KavOptimizer
from keras_adam_variants._registry import register
from keras_adam_variants._validation import check_epsilon, check_range


@register
class Adamax(KavOptimizer):
    """Adamax: Adam's second moment replaced by an exponentially weighted infinity norm.

    The update, for a gradient g at step t = 1, 2, … (Kingma & Ba 2015, §7.1, Algorithm 2, with ε
    inside the maximum as PyTorch and optax do)::

        m ← β1·m + (1 − β1)·g
        u ← max(β2·u, |g| + ε)
        θ ← θ − lr / (1 − β1^t) · m / u

    Difference from `keras.optimizers.Adamax`: Keras takes u ← max(β2·u, |g|) and divides by
    u + ε (default ε 1e-7). This class matches PyTorch's `torch.optim.Adamax`.

    `effective_learning_rate`: lr / ((1 − β1^t)·u) with t = ``iterations``; `effective_step`: that
    rate times m.

    Args:
        learning_rate: a float > 0, a `keras.optimizers.schedules.LearningRateSchedule` or a
            callable with no arguments returning the rate. Defaults to 0.002.
        beta_1: decay rate of the first-moment average, in [0, 1). Defaults to 0.9.
        beta_2: decay rate of the infinity norm, in [0, 1). Defaults to 0.999.
        epsilon: ε ≥ 1e-30 (0 is refused: see "Bad input" below), added to |g| inside the
            maximum. Defaults to 1e-8.
    {{base_arguments}}

    Reference: D. P. Kingma and J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
    §7.1, https://arxiv.org/abs/1412.6980.
    """

    _HYPERPARAMETERS = ("beta_1", "beta_2", "epsilon")

    def __init__(self, learning_rate=0.002, beta_1=0.9, beta_2=0.999, epsilon=1e-8, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = check_range("beta_1", beta_1, 0, 1)
        self.beta_2 = check_range("beta_2", beta_2, 0, 1)
        self.epsilon = check_epsilon(epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._u = self.add_optimizer_variables(var_list, ["m", "u"])

    def update_step(self, gradient, variable, learning_rate):
        g = self._dense(gradient, variable)
        lr = ops.cast(learning_rate, variable.dtype)
        m, u = self._slot(self._m, variable), self._slot(self._u, variable)
        fused = self._fused_for(variable)
        if fused is not None and not fused.in_xla_context():
            # No TensorFlow kernel has ε inside the max: the same formula, XLA-fused into one
            # loop per variable (under an outer jit_compile, the code below fuses just as well).
            fused.apply_xla(
                fused.adamax_rule(),
                [variable, m, u],
                g,
                ops.divide(lr, self._bias_correction(self.beta_1, variable)),
                self.beta_1, 1 - self.beta_1, self.beta_2, self.epsilon,
            )
            return
        self._assign_average(m, g, self.beta_1)
        self.assign(u, ops.maximum(ops.multiply(u, self.beta_2), ops.add(ops.abs(g), self.epsilon)))
        step_size = ops.divide(lr, self._bias_correction(self.beta_1, variable))
        self.assign_sub(variable, ops.multiply(step_size, ops.divide(m, u)))

    def _effective_learning_rate(self, variable, lr):
        u = self._slot(self._u, variable)
        return ops.divide(
            lr, ops.multiply(self._bias_correction_now(self.beta_1, variable), u)
        )

    def _effective_step(self, variable, lr, gradient):
        return ops.multiply(self._effective_learning_rate(variable, lr), self._slot(self._m, variable))
