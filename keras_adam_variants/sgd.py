"""SGD, the seed's baseline: plain, heavy-ball momentum, or Nesterov momentum."""

from keras import ops

from keras_adam_variants._base import KavOptimizer
from keras_adam_variants._registry import register
from keras_adam_variants._validation import check_bool, check_range


@register
class SGD(KavOptimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    The update, for a gradient g (the seed, §1 and §3; Polyak 1964; Sutskever et al. 2013)::

        momentum = 0:   θ ← θ − lr · g
        momentum μ > 0: b ← μ·b + g
                        θ ← θ − lr · b              (heavy ball)
                        θ ← θ − lr · (g + μ·b)      (nesterov=True)

    This is PyTorch's `torch.optim.SGD` (dampening 0). `keras.optimizers.SGD` keeps lr inside the
    buffer (b ← μ·b − lr·g), which gives the same trajectory for a constant learning rate.

    `effective_learning_rate`: lr for every parameter; `effective_step`: lr·b with heavy-ball
    momentum, lr·(g + μ·b) with Nesterov, lr·g without momentum (the last two need ``gradient``).

    Args:
        learning_rate: a float > 0, a `keras.optimizers.schedules.LearningRateSchedule` or a
            callable with no arguments returning the rate. Defaults to 0.01.
        momentum: μ in [0, 1). Defaults to 0.0.
        nesterov: bool, Nesterov momentum; needs momentum > 0. Defaults to False.
    {{base_arguments}}

    References: B. T. Polyak, "Some methods of speeding up the convergence of iteration methods",
    1964; I. Sutskever, J. Martens, G. Dahl and G. Hinton, "On the importance of initialization
    and momentum in deep learning", ICML 2013.
    """

    _HYPERPARAMETERS = ("momentum", "nesterov")

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = check_range("momentum", momentum, 0, 1)
        self.nesterov = check_bool("nesterov", nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError(
                "Argument `nesterov=True` needs `momentum` in (0, 1); received momentum=0.0."
            )

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        if self.momentum > 0:
            self._buffer = self.add_optimizer_variables(var_list, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        g = self._dense(gradient, variable)
        lr = ops.cast(learning_rate, variable.dtype)
        fused = self._fused_for(variable)
        if fused is not None:  # one TensorFlow kernel, exactly this formula
            if self.momentum > 0:  # b ← μb + g; θ −= lr·b, or lr·(g + μb): PyTorch's form
                fused.tf().raw_ops.ResourceApplyMomentum(
                    var=fused.handle(variable),
                    accum=fused.handle(self._slot(self._buffer, variable)),
                    lr=lr,
                    grad=g,
                    momentum=ops.cast(self.momentum, variable.dtype),
                    use_nesterov=self.nesterov,
                )
            else:
                fused.tf().raw_ops.ResourceApplyGradientDescent(
                    var=fused.handle(variable), alpha=lr, delta=g
                )
            return
        step = g
        if self.momentum > 0:
            buffer = self._slot(self._buffer, variable)
            self.assign(buffer, ops.add(ops.multiply(buffer, self.momentum), g))
            step = ops.add(g, ops.multiply(buffer, self.momentum)) if self.nesterov else buffer
        self.assign_sub(variable, ops.multiply(lr, step))

    def _effective_learning_rate(self, variable, lr):
        # ops.ones(shape), not ops.ones_like(variable): JAX cannot convert a Keras variable there.
        return ops.multiply(ops.ones(variable.shape, variable.dtype), lr)

    def _effective_step(self, variable, lr, gradient):
        if self.momentum > 0 and not self.nesterov:
            return ops.multiply(lr, self._slot(self._buffer, variable))
        step = self._given_gradient(gradient, variable)
        if self.nesterov:
            step = ops.add(step, ops.multiply(self._slot(self._buffer, variable), self.momentum))
        return ops.multiply(lr, step)
