"""Nadam (Dozat, 2016): Adam with Nesterov momentum and a momentum schedule, as PyTorch's NAdam."""

import math

import numpy as np
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
        Π_t = μ_1 · μ_2 · … · μ_t                 (a function of the global t alone)
        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        v̂ = v / (1 − β2^t)
        θ ← θ − lr · [ (1 − μ_t)/(1 − Π_t) · g + μ_{t+1}/(1 − Π_{t+1}) · m ] / (√v̂ + ε)

    Difference from `keras.optimizers.Nadam`: Keras uses μ_t = β1·(1 − 0.5·0.96^t), which is
    ``momentum_decay=1.0`` here (PyTorch's default ψ = 0.004 makes μ_t approach β1 over
    thousands of steps instead of tens); its default ε is 1e-7. With ``momentum_decay=1.0`` the
    two agree.

    t is global: the number of `apply_gradients` calls (Keras' convention, see `KavOptimizer`).
    A variable that gets no gradient in a call is left untouched and its next update uses the
    global t, in v̂ and in μ_t and Π_t alike. Π_t is computed in closed form from t (float64,
    `_mu_product`), not kept in a slot: Keras keeps one product for all variables, updated once
    per call, which gives the same values. PyTorch keeps a step count and a product per
    parameter, so for a parameter that skipped steps it differs (for all others it agrees).

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

    def load_own_variables(self, store):
        """Keras' loader; also reads a Nadam saved before Π_t was computed from t, whose state
        ends with one ``mu_product`` scalar per variable (dropped: Π_t is a function of t)."""
        legacy = len(self._trainable_variables)
        if self.built and legacy and len(store.keys()) == len(self.variables) + legacy:
            store = {str(i): store[str(i)] for i in range(len(self.variables))}
        super().load_own_variables(store)

    def _mu(self, t):
        """μ_t = β1·(1 − 0.5·0.96^(t·ψ)) for a float64 t."""
        return self.beta_1 * (1.0 - 0.5 * ops.exp(t * (self.momentum_decay * _LOG_0_96)))

    def _mu_product(self, t):
        """Π_t = μ_1·…·μ_t for a float64 t, in closed form (a function of t alone).

        With q = 0.96^ψ, Π_t = β1^t·∏_{s=1..t}(1 − q^s/2), and log ∏(1 − a·q^(s−1)) over
        s = 1..t is −Σ_k a^k/k·(1 − q^(tk))/(1 − q^k) (a = q/2; expand each log and sum the
        geometric series): 64 terms leave an error below t·2^−64.
        """
        if self.beta_1 == 0:
            return ops.zeros((), "float64")
        if self.momentum_decay == 0:  # μ_t = β1/2 for every t
            return ops.exp(t * math.log(self.beta_1 / 2))
        log_q = self.momentum_decay * _LOG_0_96
        k = np.arange(1, _SERIES_TERMS + 1, dtype=np.float64)
        weights = np.exp(k * (log_q + math.log(0.5))) / k / np.expm1(k * log_q)
        # Σ_k a^k/k · (1 − q^(tk))/(1 − q^k) = Σ_k weights_k · expm1(t·k·log q)
        series = ops.sum(ops.multiply(weights, ops.expm1(ops.multiply(t, k * log_q))))
        return ops.exp(t * math.log(self.beta_1) - series)

    def _weights(self, t):
        """((1 − μ_t)/(1 − Π_t), μ_{t+1}/(1 − Π_{t+1})) at step t, in float64: the weights of g
        and m in the Nesterov step."""
        t = ops.cast(t, "float64")
        mu, mu_next, mu_product = self._mu(t), self._mu(t + 1.0), self._mu_product(t)
        return (1.0 - mu) / (1.0 - mu_product), mu_next / (1.0 - mu_product * mu_next)

    _weights_now = None  # this call's `_weights`, set by `_backend_update_step`

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # The weights depend on t alone: computed once per call rather than once per variable
        # (~30 small ops per variable otherwise: eagerly, twice the time of the update itself).
        self._weights_now = self._weights(self._step())
        try:
            super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._weights_now = None

    def update_step(self, gradient, variable, learning_rate):
        g = self._dense(gradient, variable)
        lr = ops.cast(learning_rate, variable.dtype)
        m, v = self._slot(self._m, variable), self._slot(self._v, variable)
        weights = self._weights_now
        if weights is None:  # update_step called on its own
            weights = self._weights(self._step())
        g_weight, m_weight = (ops.cast(w, variable.dtype) for w in weights)
        self._assign_average(m, g, self.beta_1)
        self._assign_average(v, ops.square(g), self.beta_2)
        v_hat = ops.divide(v, self._bias_correction(self.beta_2, variable))
        denominator = ops.add(ops.sqrt(v_hat), self.epsilon)
        direction = ops.add(ops.multiply(g, g_weight), ops.multiply(m, m_weight))
        self.assign_sub(variable, ops.divide(ops.multiply(lr, direction), denominator))

    def _effective_learning_rate(self, variable, lr):
        v_hat = ops.divide(self._slot(self._v, variable), self._bias_correction_now(self.beta_2, variable))
        return ops.divide(lr, ops.add(ops.sqrt(v_hat), self.epsilon))

    def _effective_step(self, variable, lr, gradient):
        g = self._given_gradient(gradient, variable)
        weights = self._weights(self._last_step())
        g_weight, m_weight = (ops.cast(w, variable.dtype) for w in weights)
        direction = ops.add(
            ops.multiply(g, g_weight), ops.multiply(self._slot(self._m, variable), m_weight)
        )
        return ops.multiply(self._effective_learning_rate(variable, lr), direction)


_LOG_0_96 = math.log(0.96)
_SERIES_TERMS = 64
