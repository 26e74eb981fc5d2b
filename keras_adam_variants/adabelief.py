"""AdaBelief (Zhuang et al., 2020), Algorithm 2: Adam with the variance of g around its EMA."""

from keras import ops

from keras_adam_variants._base import KavOptimizer
from keras_adam_variants._registry import register
from keras_adam_variants._validation import check_epsilon, check_range


@register
class AdaBelief(KavOptimizer):
    """AdaBelief: adapt the step to the "belief" in the observed gradient.

    The update, for a gradient g at step t = 1, 2, … (Zhuang et al. 2020, Algorithm 2)::

        m ← β1·m + (1 − β1)·g
        s ← β2·s + (1 − β2)·(g − m)² + ε        (m already updated; ε added to s every step)
        m̂ = m / (1 − β1^t)
        ŝ = s / (1 − β2^t)
        θ ← θ − lr · m̂ / (√ŝ + ε)

    Defaults: lr, β1, β2 as the paper; ε = 1e-16, the default of the authors' package
    adabelief-pytorch 0.2 (the paper's Algorithm 2 leaves ε open; ε enters s itself, so 1e-16
    here plays the part of Adam's 1e-8 under the root). The authors' package also defaults to
    ``rectify=True`` (a RAdam-style rectification, not in Algorithm 2) and decoupled weight decay;
    this class is Algorithm 2, i.e. that package with ``rectify=False``, and its decoupled decay
    is the base class's ``weight_decay``. Neither Keras 3 nor PyTorch ships AdaBelief.

    `effective_learning_rate`: lr / (√ŝ + ε) with t = ``iterations``; `effective_step`: that rate
    times m̂.

    Args:
        learning_rate: a float > 0, a `keras.optimizers.schedules.LearningRateSchedule` or a
            callable with no arguments returning the rate. Defaults to 0.001.
        beta_1: decay rate of the first-moment average, in [0, 1). Defaults to 0.9.
        beta_2: decay rate of the belief average s, in [0, 1). Defaults to 0.999.
        epsilon: ε ≥ 1e-30 (0 is refused: see "Bad input" below), added to s every step
            and to √ŝ. Defaults to 1e-16.
    {{base_arguments}}

    Reference: J. Zhuang, T. Tang, Y. Ding, S. Tatikonda, N. Dvornek, X. Papademetris and
    J. S. Duncan, "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed
    Gradients", NeurIPS 2020, https://arxiv.org/abs/2010.07468.
    """

    _HYPERPARAMETERS = ("beta_1", "beta_2", "epsilon")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-16, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = check_range("beta_1", beta_1, 0, 1)
        self.beta_2 = check_range("beta_2", beta_2, 0, 1)
        self.epsilon = check_epsilon(epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._s = self.add_optimizer_variables(var_list, ["m", "s"])

    def update_step(self, gradient, variable, learning_rate):
        g = self._dense(gradient, variable)
        lr = ops.cast(learning_rate, variable.dtype)
        m, s = self._slot(self._m, variable), self._slot(self._s, variable)
        self._assign_average(m, g, self.beta_1)
        belief = ops.multiply(ops.square(ops.subtract(g, m)), 1 - self.beta_2)
        self.assign(s, ops.add(ops.add(ops.multiply(s, self.beta_2), belief), self.epsilon))
        m_hat = ops.divide(m, self._bias_correction(self.beta_1, variable))
        s_hat = ops.divide(s, self._bias_correction(self.beta_2, variable))
        self.assign_sub(
            variable, ops.divide(ops.multiply(lr, m_hat), ops.add(ops.sqrt(s_hat), self.epsilon))
        )

    def _effective_learning_rate(self, variable, lr):
        s_hat = ops.divide(
            self._slot(self._s, variable), self._bias_correction_now(self.beta_2, variable)
        )
        return ops.divide(lr, ops.add(ops.sqrt(s_hat), self.epsilon))

    def _effective_step(self, variable, lr, gradient):
        m_hat = ops.divide(
            self._slot(self._m, variable), self._bias_correction_now(self.beta_1, variable)
        )
        return ops.multiply(self._effective_learning_rate(variable, lr), m_hat)
