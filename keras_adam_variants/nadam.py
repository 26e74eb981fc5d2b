"""Nadam (Dozat, 2016): Adam with Nesterov momentum and a momentum schedule, as PyTorch's NAdam."""

from keras import ops

from keras_adam_variants._base import KavOptimizer
from keras_adam_variants._registry import register
from keras_adam_variants._validation import check_epsilon, check_non_negative, check_range


@register
class Nadam(KavOptimizer):
    """Nadam: Nesterov-accelerated adaptive moment estimation.

    The update, for a gradient g at step t = 1, 2, … (Dozat 2016, Algorithm 2, with the momentum
    schedule of its §3 as PyTorch's `torch.optim.NAdam` writes it)::

        μ_t = β1 · (1 − 0.5 · 0.96^(t·ψ))         (ψ = momentum_decay)
        Π_t = Π_{t−1} · μ_t                       (Π_0 = 1; kept per variable, as PyTorch)
        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        v̂ = v / (1 − β2^t)
        θ ← θ − lr · [ (1 − μ_t)/(1 − Π_t) · g + μ_{t+1}/(1 − Π_{t+1}) · m ] / (√v̂ + ε)

    Difference from `keras.optimizers.Nadam`: Keras uses μ_t = β1·(1 − 0.5·0.96^t), which is
    ``momentum_decay=1.0`` here (PyTorch's default ψ = 0.004 makes μ_t approach β1 over
    thousands of steps instead of tens); its default ε is 1e-7. With ``momentum_decay=1.0`` the
    two agree. Keras keeps one product Π for all variables; PyTorch and this class keep one per
    variable (the same values, each variable's slot is saved with it).

    `effective_learning_rate`: lr / (√v̂ + ε) with t = ``iterations``; `effective_step` needs the
    gradient (the Nesterov term uses it): lr · [ (1 − μ_t)/(1 − Π_t)·g + μ_{t+1}/(1 − Π_{t+1})·m ]
    / (√v̂ + ε).

    Args:
        learning_rate: a float > 0, a `keras.optimizers.schedules.LearningRateSchedule` or a
            callable with no arguments returning the rate. Defaults to 0.002 (PyTorch, Dozat).
        beta_1: β1 of the momentum schedule and the first-moment average, in [0, 1).
            Defaults to 0.9.
        beta_2: decay rate of the second-moment average, in [0, 1). Defaults to 0.999.
        epsilon: ε ≥ 1e-30 (0 is refused: see "Bad input" below), added to √v̂. Defaults to 1e-8.
        momentum_decay: ψ ≥ 0 of the momentum schedule. Defaults to 0.004 (PyTorch);
            1.0 is Keras' schedule.
    {{base_arguments}}

    Reference: T. Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop,
    https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ.
    """

    _HYPERPARAMETERS = ("beta_1", "beta_2", "epsilon", "momentum_decay")

    def __init__(
        self,
        learning_rate=0.002,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        momentum_decay=0.004,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = check_range("beta_1", beta_1, 0, 1)
        self.beta_2 = check_range("beta_2", beta_2, 0, 1)
        self.epsilon = check_epsilon(epsilon)
        self.momentum_decay = check_non_negative("momentum_decay", momentum_decay)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._v = self.add_optimizer_variables(var_list, ["m", "v"])
        # Π_t, a scalar per variable (PyTorch's state["mu_product"]), in the variable's dtype.
        self._mu_product = [
            self.add_variable(
                shape=(), initializer="ones", dtype=variable.dtype, name="mu_product"
            )
            for variable in var_list
        ]

    def _mu(self, t, variable):
        """μ_t = β1·(1 − 0.5·0.96^(t·ψ)), computed in float32, cast to the variable's dtype."""
        decay = ops.power(0.96, ops.multiply(t, self.momentum_decay))
        return ops.cast(self.beta_1 * (1.0 - 0.5 * decay), variable.dtype)

    def update_step(self, gradient, variable, learning_rate):
        g = self._dense(gradient, variable)
        lr = ops.cast(learning_rate, variable.dtype)
        m, v = self._slot(self._m, variable), self._slot(self._v, variable)
        mu_product = self._slot(self._mu_product, variable)
        t = self._step()
        mu, mu_next = self._mu(t, variable), self._mu(t + 1.0, variable)
        self.assign(mu_product, ops.multiply(mu_product, mu))
        self._assign_average(m, g, self.beta_1)
        self._assign_average(v, ops.square(g), self.beta_2)
        v_hat = ops.divide(v, self._bias_correction(self.beta_2, variable))
        denominator = ops.add(ops.sqrt(v_hat), self.epsilon)
        direction = ops.add(
            ops.multiply(g, ops.divide(1.0 - mu, 1.0 - mu_product)),
            ops.multiply(m, ops.divide(mu_next, 1.0 - ops.multiply(mu_product, mu_next))),
        )
        self.assign_sub(variable, ops.divide(ops.multiply(lr, direction), denominator))

    def _effective_learning_rate(self, variable, lr):
        v_hat = ops.divide(self._slot(self._v, variable), self._bias_correction_now(self.beta_2, variable))
        return ops.divide(lr, ops.add(ops.sqrt(v_hat), self.epsilon))

    def _effective_step(self, variable, lr, gradient):
        g = self._given_gradient(gradient, variable)
        mu_product = self._slot(self._mu_product, variable)
        t = self._last_step()
        mu, mu_next = self._mu(t, variable), self._mu(t + 1.0, variable)
        direction = ops.add(
            ops.multiply(g, ops.divide(1.0 - mu, 1.0 - mu_product)),
            ops.multiply(
                self._slot(self._m, variable),
                ops.divide(mu_next, 1.0 - ops.multiply(mu_product, mu_next)),
            ),
        )
        return ops.multiply(self._effective_learning_rate(variable, lr), direction)
