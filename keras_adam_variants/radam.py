"""RAdam (Liu et al., 2020): Adam with the variance of its adaptive rate rectified, as PyTorch's."""

import math

from keras import ops

from keras_adam_variants._base import KavOptimizer
from keras_adam_variants._registry import register
from keras_adam_variants._validation import check_epsilon, check_radam_beta_2, check_range


@register
class RAdam(KavOptimizer):
    """RAdam: rectified Adam.

    The update, for a gradient g at step t = 1, 2, … (Liu et al. 2020, Algorithm 2, with ε as
    PyTorch's `torch.optim.RAdam` and the authors' code add it)::

        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        m̂ = m / (1 − β1^t)
        ρ_∞ = 2/(1 − β2) − 1
        ρ_t = ρ_∞ − 2·t·β2^t / (1 − β2^t)
        if ρ_t > 5:   r_t = √( (ρ_t − 4)(ρ_t − 2)ρ_∞ / ((ρ_∞ − 4)(ρ_∞ − 2)ρ_t) )
                      θ ← θ − lr · r_t · m̂ · √(1 − β2^t) / (√v + ε)
        else:         θ ← θ − lr · m̂          (SGD with bias-corrected momentum)

    The branch is `ops.where` on the step count, so the update traces once and compiles under
    XLA. ρ_t is computed in float64: near the threshold it is a small difference of two numbers
    close to 2/(1 − β2) (ρ_5 = 4.996 for β2 = 0.999, 4.9996 for 0.9999), which float32 cannot
    resolve. For β2 = 0.999 the first five steps are un-rectified.

    Differences: the paper writes l_t = √((1 − β2^t)/v_t) without ε; PyTorch (and this class)
    divide by √v + ε, i.e. ε is added to √v, not to √v̂ as in our `Adam`. The authors' code
    switches at ρ_t ≥ 5 and PyTorch at ρ_t > 5 (this class); ρ_t is never exactly 5 in
    practice. PyTorch's ``decoupled_weight_decay=True`` is the base class's ``weight_decay``.
    Keras 3 has no RAdam.

    `effective_learning_rate`: lr · r_t · √(1 − β2^t) / (√v + ε) while rectified, lr before
    (t = ``iterations``); `effective_step`: that rate times m̂.

    Args:
        learning_rate: a float > 0, a `keras.optimizers.schedules.LearningRateSchedule` or a
            callable with no arguments returning the rate. Defaults to 0.001.
        beta_1: decay rate of the first-moment average, in [0, 1). Defaults to 0.9.
        beta_2: decay rate of the second-moment average, in (2/3, 1): ρ∞ = 2/(1 − β2) − 1 must
            exceed 5, or the rectified step is never taken. Defaults to 0.999.
        epsilon: ε ≥ 1e-30 (0 is refused: see "Bad input" below), added to √v. Defaults to 1e-8.
    {{base_arguments}}

    Reference: L. Liu, H. Jiang, P. He, W. Chen, X. Liu, J. Gao and J. Han, "On the Variance of
    the Adaptive Learning Rate and Beyond", ICLR 2020, https://arxiv.org/abs/1908.03265.
    """

    _HYPERPARAMETERS = ("beta_1", "beta_2", "epsilon")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = check_range("beta_1", beta_1, 0, 1)
        self.beta_2 = check_radam_beta_2(beta_2)
        self.epsilon = check_epsilon(epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._v = self.add_optimizer_variables(var_list, ["m", "v"])

    def _rectified_rate(self, v, t, variable):
        """(whether ρ_t > 5, r_t·√(1 − β2^t)/(√v + ε)) for step t (a float32 scalar tensor)."""
        rectified, scale = self._rectification(t, variable)
        return rectified, ops.divide(scale, ops.add(ops.sqrt(v), self.epsilon))

    def _rectification(self, t, variable):
        """(whether ρ_t > 5, r_t·√(1 − β2^t) in the variable's dtype) for step t."""
        # β2^t = exp(t·log β2) with log β2 in Python's double: casting β2 through float32 would
        # move ρ_t by ~0.02 at t = 40.
        t = ops.cast(t, "float64")
        beta_2_power = ops.exp(t * math.log(self.beta_2))
        rho_inf = 2.0 / (1.0 - self.beta_2) - 1.0
        rho_t = rho_inf - 2.0 * t * beta_2_power / (1.0 - beta_2_power)
        rectified = ops.greater(rho_t, 5.0)
        # Clipped where not rectified, so that the unused branch stays finite.
        rho_safe = ops.maximum(rho_t, 5.0)
        r_t = ops.sqrt(
            (rho_safe - 4.0) * (rho_safe - 2.0) * rho_inf
            / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_safe)
        )
        return rectified, ops.cast(r_t * ops.sqrt(1.0 - beta_2_power), variable.dtype)

    def update_step(self, gradient, variable, learning_rate):
        g = self._dense(gradient, variable)
        lr = ops.cast(learning_rate, variable.dtype)
        m, v = self._slot(self._m, variable), self._slot(self._v, variable)
        self._assign_average(m, g, self.beta_1)
        self._assign_average(v, ops.square(g), self.beta_2)
        m_hat = ops.divide(m, self._bias_correction(self.beta_1, variable))
        rectified, scale = self._rectification(self._step(), variable)
        # The numerator first: scale/(√v + ε) alone can overflow float16 where v = 0 (then
        # inf·0 = NaN); scale·m̂/(√v + ε) is 0 there.
        adaptive_step = ops.divide(ops.multiply(scale, m_hat), ops.add(ops.sqrt(v), self.epsilon))
        self.assign_sub(variable, ops.multiply(lr, ops.where(rectified, adaptive_step, m_hat)))

    def _effective_learning_rate(self, variable, lr):
        rectified, adaptive = self._rectified_rate(
            self._slot(self._v, variable), self._last_step(), variable
        )
        return ops.multiply(lr, ops.where(rectified, adaptive, ops.ones_like(adaptive)))

    def _effective_step(self, variable, lr, gradient):
        m_hat = ops.divide(
            self._slot(self._m, variable), self._bias_correction_now(self.beta_1, variable)
        )
        return ops.multiply(self._effective_learning_rate(variable, lr), m_hat)
