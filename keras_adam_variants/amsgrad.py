"""AMSGrad (Reddi, Kale & Kumar, 2018), eq. (1) of the seed, optionally bias-corrected."""

from keras import ops

from keras_adam_variants._base import KavOptimizer
from keras_adam_variants._registry import register
from keras_adam_variants._validation import check_bool, check_epsilon, check_range


@register
class AMSGrad(KavOptimizer):
    """AMSGrad: Adam with a non-decreasing second-moment estimate.

    The update, for a gradient g at step t = 1, 2, … (Reddi et al. 2018, Algorithm 2; the seed's
    eq. (1)), with the default ``bias_correction=False``::

        m ← β1·m + (1 − β1)·g
        v ← β2·v + (1 − β2)·g²
        v̂ ← max(v̂, v)
        θ ← θ − lr · m / (√v̂ + ε)

    With ``bias_correction=True`` (the form of PyTorch's ``Adam(amsgrad=True)``) the maximum is
    still taken over the raw v, and then both estimates are bias-corrected::

        θ ← θ − lr · (m / (1 − β1^t)) / (√(v̂ / (1 − β2^t)) + ε)

    Differences: `keras.optimizers.Adam(amsgrad=True)` is the bias-corrected form with Keras'
    "ε-hat" placement of ε (see `Adam`); with ε = 0 it equals ``bias_correction=True``. optax's
    ``amsgrad`` takes the maximum over the bias-corrected v instead.

    `effective_learning_rate`: lr / (√v̂ + ε) (v̂ the running maximum; with
    ``bias_correction``, lr / (√(v̂/(1 − β2^t)) + ε), t = ``iterations``) — it never increases for a
    constant lr; `effective_step`: that rate times m (m/(1 − β1^t) with ``bias_correction``).

    Args:
        learning_rate: a float > 0, a `keras.optimizers.schedules.LearningRateSchedule` or a
            callable with no arguments returning the rate. Defaults to 0.001.
        beta_1: decay rate of the first-moment average, in [0, 1). Defaults to 0.9.
        beta_2: decay rate of the second-moment average, in [0, 1). Defaults to 0.999.
        epsilon: ε ≥ 1e-30 (0 is refused: see "Bad input" below), added to √v̂. Defaults to 1e-8.
        bias_correction: bool, whether to bias-correct m and v̂ (PyTorch's form). Defaults to
            False, the paper's form.
    {{base_arguments}}

    Reference: S. J. Reddi, S. Kale and S. Kumar, "On the Convergence of Adam and Beyond",
    ICLR 2018, https://arxiv.org/abs/1904.09237.
    """

    _HYPERPARAMETERS = ("beta_1", "beta_2", "epsilon", "bias_correction")

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        bias_correction=False,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = check_range("beta_1", beta_1, 0, 1)
        self.beta_2 = check_range("beta_2", beta_2, 0, 1)
        self.epsilon = check_epsilon(epsilon)
        self.bias_correction = check_bool("bias_correction", bias_correction)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._v, self._v_hat = self.add_optimizer_variables(
            var_list, ["m", "v", "v_hat"]
        )

    def update_step(self, gradient, variable, learning_rate):
        g = self._dense(gradient, variable)
        lr = ops.cast(learning_rate, variable.dtype)
        m = self._slot(self._m, variable)
        v = self._slot(self._v, variable)
        v_hat = self._slot(self._v_hat, variable)
        fused = self._fused_for(variable)
        if fused is not None and fused.in_xla_context() is False:  # the kernel has no XLA version
            # One TensorFlow kernel: v̂ ← max(v̂, v); θ ← θ − lr'·m/(√v̂ + ε') (β powers 0).
            # lr' = lr, ε' = ε is the paper's form; lr' = lr·√(1−β2^t)/(1−β1^t) and
            # ε' = ε·√(1−β2^t) the bias-corrected form above.
            # The exact corrections are folded into lr and ε' with powers 0 (see `Adam`).
            dtype = variable.dtype
            zero = ops.zeros((), dtype)
            step_size, epsilon = lr, ops.cast(self.epsilon, dtype)
            if self.bias_correction:
                correction_1 = self._bias_correction(self.beta_1, variable, beta_rounded_to=dtype)
                root_2 = ops.sqrt(
                    self._bias_correction(self.beta_2, variable, beta_rounded_to=dtype)
                )
                step_size = ops.divide(ops.multiply(lr, root_2), correction_1)
                epsilon = ops.multiply(epsilon, root_2)
            fused.tf().raw_ops.ResourceApplyAdamWithAmsgrad(
                var=fused.handle(variable),
                m=fused.handle(m),
                v=fused.handle(v),
                vhat=fused.handle(v_hat),
                beta1_power=zero,
                beta2_power=zero,
                lr=step_size,
                beta1=ops.cast(self.beta_1, dtype),
                beta2=ops.cast(self.beta_2, dtype),
                epsilon=epsilon,
                grad=g,
            )
            return
        self._assign_average(m, g, self.beta_1)
        self._assign_average(v, ops.square(g), self.beta_2)
        self.assign(v_hat, ops.maximum(v_hat, v))
        if fused is not None and self.bias_correction:
            # float32/float64 under XLA: the kernel's form, bias corrections folded into two
            # scalars, lr·√(1−β2^t)/(1−β1^t) · m/(√v̂ + ε·√(1−β2^t)): one division per element
            # instead of three, and the same value as the kernel computes without XLA.
            root = ops.sqrt(self._bias_correction(self.beta_2, variable))
            alpha = ops.divide(ops.multiply(lr, root), self._bias_correction(self.beta_1, variable))
            self.assign_sub(
                variable,
                ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(v_hat), root * self.epsilon)),
            )
            return
        numerator, denominator = m, v_hat
        if self.bias_correction:
            numerator = ops.divide(m, self._bias_correction(self.beta_1, variable))
            denominator = ops.divide(v_hat, self._bias_correction(self.beta_2, variable))
        self.assign_sub(
            variable,
            ops.divide(ops.multiply(lr, numerator), ops.add(ops.sqrt(denominator), self.epsilon)),
        )

    def _kernel_beta_dtype(self, variable):
        return variable.dtype if self._fused_for(variable) is not None else None

    def _effective_learning_rate(self, variable, lr):
        v_hat = self._slot(self._v_hat, variable)
        if self.bias_correction:
            v_hat = ops.divide(v_hat, self._bias_correction_now(self.beta_2, variable))
        return ops.divide(lr, ops.add(ops.sqrt(v_hat), self.epsilon))

    def _effective_step(self, variable, lr, gradient):
        m = self._slot(self._m, variable)
        if self.bias_correction:
            m = ops.divide(m, self._bias_correction_now(self.beta_1, variable))
        return ops.multiply(self._effective_learning_rate(variable, lr), m)
