"""Adam (Kingma & Ba, 2015), Algorithm 1 exactly as the seed writes it."""

from keras import ops

from keras_adam_variants._base import KavOptimizer
from keras_adam_variants._registry import register
from keras_adam_variants._validation import check_epsilon, check_range


@register
class Adam(KavOptimizer):
    """Adam: adaptive moment estimation.

    The update, for a gradient g at step t = 1, 2, … (Kingma & Ba 2015, Algorithm 1; the seed's
    pseudo-code)::

        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        m̂ = m / (1 − β1^t)
        v̂ = v / (1 − β2^t)
        θ ← θ − lr · m̂ / (√v̂ + ε)

    Difference from `keras.optimizers.Adam`: Keras implements the "ε-hat" form
    θ ← θ − lr·√(1 − β2^t)/(1 − β1^t) · m / (√v + ε), whose ε is in effect √(1 − β2^t) times
    smaller relative to √v̂, and its default ε is 1e-7. Where √v̂ is far above ε the two agree;
    for tiny gradients they do not. This class matches PyTorch's `torch.optim.Adam` and optax's
    `adam`.

    `effective_learning_rate`: lr / (√v̂ + ε) with t = ``iterations``; `effective_step`: that
    rate times m̂, lr·m̂/(√v̂ + ε) — the last step taken.

    Args:
        learning_rate: a float > 0, a `keras.optimizers.schedules.LearningRateSchedule` or a
            callable with no arguments returning the rate. Defaults to 0.001.
        beta_1: decay rate of the first-moment average, in [0, 1). Defaults to 0.9.
        beta_2: decay rate of the second-moment average, in [0, 1). Defaults to 0.999.
        epsilon: ε ≥ 1e-30 (0 is refused: see "Bad input" below), added to √v̂. Defaults to 1e-8.
    {{base_arguments}}

    Reference: D. P. Kingma and J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
    https://arxiv.org/abs/1412.6980.
    """

    _HYPERPARAMETERS = ("beta_1", "beta_2", "epsilon")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = check_range("beta_1", beta_1, 0, 1)
        self.beta_2 = check_range("beta_2", beta_2, 0, 1)
        self.epsilon = check_epsilon(epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._v = self.add_optimizer_variables(var_list, ["m", "v"])

    def update_step(self, gradient, variable, learning_rate):
        g = self._dense(gradient, variable)
        lr = ops.cast(learning_rate, variable.dtype)
        m, v = self._slot(self._m, variable), self._slot(self._v, variable)
        fused = self._fused_for(variable)
        if fused is not None:
            # One TensorFlow kernel: lr·√(1−β2^t)/(1−β1^t)·m/(√v + ε'), with ε' = ε·√(1−β2^t)
            # equal to lr·m̂/(√v̂ + ε) above. The kernel would compute 1 − β^t from β^t in the
            # variable's dtype (β2^t rounds to float32 near 1: up to 0.1% off for β2 = 0.99999),
            # so it gets powers 0 and the exact corrections folded into lr and ε instead.
            dtype = variable.dtype
            correction_1 = self._bias_correction(self.beta_1, variable, beta_rounded_to=dtype)
            root_2 = ops.sqrt(self._bias_correction(self.beta_2, variable, beta_rounded_to=dtype))
            zero = ops.zeros((), dtype)
            fused.tf().raw_ops.ResourceApplyAdam(
                var=fused.handle(variable),
                m=fused.handle(m),
                v=fused.handle(v),
                beta1_power=zero,
                beta2_power=zero,
                lr=ops.divide(ops.multiply(lr, root_2), correction_1),
                beta1=ops.cast(self.beta_1, dtype),
                beta2=ops.cast(self.beta_2, dtype),
                epsilon=ops.multiply(ops.cast(self.epsilon, dtype), root_2),
                grad=g,
            )
            return
        self._assign_average(m, g, self.beta_1)
        self._assign_average(v, ops.square(g), self.beta_2)
        m_hat = ops.divide(m, self._bias_correction(self.beta_1, variable))
        v_hat = ops.divide(v, self._bias_correction(self.beta_2, variable))
        self.assign_sub(
            variable, ops.divide(ops.multiply(lr, m_hat), ops.add(ops.sqrt(v_hat), self.epsilon))
        )

    def _kernel_beta_dtype(self, variable):
        return variable.dtype if self._fused_for(variable) is not None else None

    def _effective_learning_rate(self, variable, lr):
        v_hat = ops.divide(
            self._slot(self._v, variable), self._bias_correction_now(self.beta_2, variable)
        )
        return ops.divide(lr, ops.add(ops.sqrt(v_hat), self.epsilon))

    def _effective_step(self, variable, lr, gradient):
        m_hat = ops.divide(
            self._slot(self._m, variable), self._bias_correction_now(self.beta_1, variable)
        )
        return ops.multiply(self._effective_learning_rate(variable, lr), m_hat)
