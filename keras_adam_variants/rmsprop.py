"""RMSprop (Tieleman & Hinton, 2012) as the seed writes it, with PyTorch's centered and momentum options."""

from keras import ops

from keras_adam_variants._base import KavOptimizer
from keras_adam_variants._registry import register
from keras_adam_variants._validation import check_bool, check_epsilon, check_range


@register
class RMSprop(KavOptimizer):
    """RMSprop: divide the gradient by a running root mean square of recent gradients.

    The update, for a gradient g (the seed, §3; Tieleman & Hinton 2012, lecture 6.5)::

        E ← ρ·E + (1 − ρ)·g²
        θ ← θ − lr · g / (√E + ε)

    ``centered=True`` also keeps ḡ ← ρ·ḡ + (1 − ρ)·g and uses √(E − ḡ²) (an estimate of the
    standard deviation) in place of √E (Graves 2013, eq. 38–40); E − ḡ² is clipped at 0 so that
    rounding cannot make it negative. ``momentum`` μ > 0 keeps a buffer b, as PyTorch does::

        b ← μ·b + g / (√E + ε)
        θ ← θ − lr · b

    Difference from `keras.optimizers.RMSprop`: Keras puts ε inside the root, √(E + ε), its
    default ε is 1e-7, and its momentum buffer holds lr·g/… (the same trajectory for a constant
    learning rate). This class matches PyTorch's `torch.optim.RMSprop`.

    `effective_learning_rate`: lr / (√E + ε) (√(E − ḡ²) when centered); `effective_step`: lr·b
    with momentum (from the buffer), otherwise that rate times the ``gradient`` it is given.

    Args:
        learning_rate: a float > 0, a `keras.optimizers.schedules.LearningRateSchedule` or a
            callable with no arguments returning the rate. Defaults to 0.001.
        rho: decay rate ρ of the squared-gradient average, in [0, 1). Defaults to 0.9.
        epsilon: ε ≥ 1e-30 (0 is refused: see "Bad input" below), added to the root.
            Defaults to 1e-8.
        momentum: μ in [0, 1). Defaults to 0.0 (no momentum buffer).
        centered: bool, normalize by the estimated variance instead of the second moment.
            Defaults to False.
    {{base_arguments}}

    References: T. Tieleman and G. Hinton, "Lecture 6.5 - RMSProp", COURSERA: Neural Networks for
    Machine Learning, 2012; A. Graves, "Generating Sequences With Recurrent Neural Networks",
    2013, https://arxiv.org/abs/1308.0850.
    """

    _HYPERPARAMETERS = ("rho", "epsilon", "momentum", "centered")

    def __init__(
        self, learning_rate=0.001, rho=0.9, epsilon=1e-8, momentum=0.0, centered=False, **kwargs
    ):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = check_range("rho", rho, 0, 1)
        self.epsilon = check_epsilon(epsilon)
        self.momentum = check_range("momentum", momentum, 0, 1)
        self.centered = check_bool("centered", centered)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._square_avg = self.add_optimizer_variables(var_list, "square_avg")
        if self.momentum > 0:
            self._buffer = self.add_optimizer_variables(var_list, "momentum")
        if self.centered:
            self._grad_avg = self.add_optimizer_variables(var_list, "grad_avg")

    def update_step(self, gradient, variable, learning_rate):
        g = self._dense(gradient, variable)
        lr = ops.cast(learning_rate, variable.dtype)
        square_avg = self._slot(self._square_avg, variable)
        fused = self._fused_for(variable)
        if fused is not None and not fused.in_xla_context():
            # No TensorFlow kernel has ε outside the root: the same formula, XLA-fused into one
            # loop per variable (under an outer jit_compile, the code below fuses just as well).
            slots = [square_avg]
            if self.centered:
                slots.append(self._slot(self._grad_avg, variable))
            if self.momentum > 0:
                slots.append(self._slot(self._buffer, variable))
            fused.apply_xla(
                fused.rmsprop_rule(self.centered, self.momentum > 0),
                [variable, *slots],
                g,
                lr, self.rho, 1 - self.rho, self.epsilon, self.momentum,
            )
            return
        self._assign_average(square_avg, ops.square(g), self.rho)
        second_moment = square_avg
        if self.centered:
            grad_avg = self._slot(self._grad_avg, variable)
            self._assign_average(grad_avg, g, self.rho)
            second_moment = ops.maximum(ops.subtract(square_avg, ops.square(grad_avg)), 0.0)
        step = ops.divide(g, ops.add(ops.sqrt(second_moment), self.epsilon))
        if self.momentum > 0:
            buffer = self._slot(self._buffer, variable)
            self.assign(buffer, ops.add(ops.multiply(buffer, self.momentum), step))
            step = buffer
        self.assign_sub(variable, ops.multiply(lr, step))

    def _effective_learning_rate(self, variable, lr):
        second_moment = self._slot(self._square_avg, variable)
        if self.centered:
            grad_avg = self._slot(self._grad_avg, variable)
            second_moment = ops.maximum(ops.subtract(second_moment, ops.square(grad_avg)), 0.0)
        return ops.divide(lr, ops.add(ops.sqrt(second_moment), self.epsilon))

    def _effective_step(self, variable, lr, gradient):
        if self.momentum > 0:
            return ops.multiply(lr, self._slot(self._buffer, variable))
        g = self._given_gradient(gradient, variable)
        return ops.multiply(self._effective_learning_rate(variable, lr), g)
