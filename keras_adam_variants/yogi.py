"""Yogi (Zaheer et al., 2018), Algorithm 2: an additive, sign-controlled second moment."""

from keras import initializers, ops

from keras_adam_variants._base import KavOptimizer
from keras_adam_variants._registry import register
from keras_adam_variants._validation import check_epsilon, check_non_negative, check_range


@register
class Yogi(KavOptimizer):
    """Yogi: Adam whose second moment changes by at most (1 − β2)·g² per step.

    The update, for a gradient g (Zaheer et al. 2018, Algorithm 2; no bias correction)::

        m ← β1·m + (1 − β1)·g
        v ← v − (1 − β2) · sign(v − g²) · g²     (v starts at initial_accumulator_value)
        θ ← θ − lr · m / (√v + ε)

    Defaults are the paper's (§4): lr = 0.01, β1 = 0.9, β2 = 0.999, ε = 1e-3 and v_0 = 1e-6 (its
    Algorithm 2 writes v_0 = 0; the experiments start at 1e-6, which keeps √v away from 0 and the
    sign test meaningful from the first step).

    Differences: optax's ``yogi`` and TensorFlow Addons' ``Yogi`` (same defaults) bias-correct m
    and v as Adam does; TF Addons also adds l1/l2 terms. Neither Keras 3 nor PyTorch ships Yogi.

    `effective_learning_rate`: lr / (√v + ε); `effective_step`: that rate times m.

    Args:
        learning_rate: a float > 0, a `keras.optimizers.schedules.LearningRateSchedule` or a
            callable with no arguments returning the rate. Defaults to 0.01.
        beta_1: decay rate of the first-moment average, in [0, 1). Defaults to 0.9.
        beta_2: β2 in [0, 1); 1 − β2 bounds the relative change of v. Defaults to 0.999.
        epsilon: ε ≥ 1e-30 (0 is refused: see "Bad input" below), added to √v. Defaults to 1e-3.
        initial_accumulator_value: v_0 ≥ 0. Defaults to 1e-6.
    {{base_arguments}}

    Reference: M. Zaheer, S. Reddi, D. Sachan, S. Kale and S. Kumar, "Adaptive Methods for
    Nonconvex Optimization", NeurIPS 2018.
    """

    _HYPERPARAMETERS = ("beta_1", "beta_2", "epsilon", "initial_accumulator_value")

    def __init__(
        self,
        learning_rate=0.01,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-3,
        initial_accumulator_value=1e-6,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = check_range("beta_1", beta_1, 0, 1)
        self.beta_2 = check_range("beta_2", beta_2, 0, 1)
        self.epsilon = check_epsilon(epsilon)
        self.initial_accumulator_value = check_non_negative(
            "initial_accumulator_value", initial_accumulator_value
        )

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._v = self.add_optimizer_variables(
            var_list, ["m", "v"], ["zeros", initializers.Constant(self.initial_accumulator_value)]
        )

    def update_step(self, gradient, variable, learning_rate):
        g = self._dense(gradient, variable)
        lr = ops.cast(learning_rate, variable.dtype)
        m, v = self._slot(self._m, variable), self._slot(self._v, variable)
        self._assign_average(m, g, self.beta_1)
        g2 = ops.square(g)
        self.assign_sub(v, ops.multiply(ops.multiply(ops.sign(ops.subtract(v, g2)), g2), 1 - self.beta_2))
        self.assign_sub(
            variable, ops.divide(ops.multiply(lr, m), ops.add(ops.sqrt(v), self.epsilon))
        )

    def _effective_learning_rate(self, variable, lr):
        v = self._slot(self._v, variable)
        return ops.divide(lr, ops.add(ops.sqrt(v), self.epsilon))

    def _effective_step(self, variable, lr, gradient):
        return ops.multiply(self._effective_learning_rate(variable, lr), self._slot(self._m, variable))
