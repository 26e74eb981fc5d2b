"""Adadelta (Zeiler, 2012), Algorithm 1, with a learning rate that scales the step."""

from keras import ops

from keras_adam_variants._base import KavOptimizer
from keras_adam_variants._registry import register
from keras_adam_variants._validation import check_epsilon, check_range


@register
class Adadelta(KavOptimizer):
    """Adadelta: an adaptive rate with units that match the parameter's.

    The update, for a gradient g (Zeiler 2012, Algorithm 1; named in the seed, §3)::

        E[g²] ← ρ·E[g²] + (1 − ρ)·g²
        Δ = √(E[Δ²] + ε) / √(E[g²] + ε) · g
        E[Δ²] ← ρ·E[Δ²] + (1 − ρ)·Δ²
        θ ← θ − lr · Δ

    The paper has no learning rate (lr = 1.0, the default here). Keras'
    `keras.optimizers.Adadelta` implements the same rule (default lr 1e-3, ε 1e-7) and PyTorch's
    `torch.optim.Adadelta` too (default ρ 0.9).

    `effective_learning_rate`: lr · √(E[Δ²] + ε) / √(E[g²] + ε) with the current averages;
    `effective_step`: that rate times the ``gradient`` it is given.

    Args:
        learning_rate: a float > 0, a `keras.optimizers.schedules.LearningRateSchedule` or a
            callable with no arguments returning the rate. Defaults to 1.0.
        rho: decay rate ρ of both averages, in [0, 1). Defaults to 0.95.
        epsilon: ε ≥ 1e-30 (0 is refused: see "Bad input" below), inside both roots.
            Defaults to 1e-6.
    {{base_arguments}}

    Reference: M. D. Zeiler, "ADADELTA: An Adaptive Learning Rate Method", 2012,
    https://arxiv.org/abs/1212.5701.
    """

    _HYPERPARAMETERS = ("rho", "epsilon")

    def __init__(self, learning_rate=1.0, rho=0.95, epsilon=1e-6, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = check_range("rho", rho, 0, 1)
        self.epsilon = check_epsilon(epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._square_avg, self._delta_avg = self.add_optimizer_variables(
            var_list, ["square_avg", "delta_avg"]
        )

    def update_step(self, gradient, variable, learning_rate):
        g = self._dense(gradient, variable)
        lr = ops.cast(learning_rate, variable.dtype)
        square_avg = self._slot(self._square_avg, variable)
        delta_avg = self._slot(self._delta_avg, variable)
        fused = self._fused_for(variable)
        if fused is not None:  # one TensorFlow kernel, exactly Zeiler's Algorithm 1 with lr
            fused.tf().raw_ops.ResourceApplyAdadelta(
                var=fused.handle(variable),
                accum=fused.handle(square_avg),
                accum_update=fused.handle(delta_avg),
                lr=lr,
                rho=ops.cast(self.rho, variable.dtype),
                epsilon=ops.cast(self.epsilon, variable.dtype),
                grad=g,
            )
            return
        self._assign_average(square_avg, ops.square(g), self.rho)
        delta = ops.multiply(
            ops.divide(
                ops.sqrt(ops.add(delta_avg, self.epsilon)),
                ops.sqrt(ops.add(square_avg, self.epsilon)),
            ),
            g,
        )
        self._assign_average(delta_avg, ops.square(delta), self.rho)
        self.assign_sub(variable, ops.multiply(lr, delta))

    def _effective_learning_rate(self, variable, lr):
        square_avg = self._slot(self._square_avg, variable)
        delta_avg = self._slot(self._delta_avg, variable)
        return ops.multiply(
            lr,
            ops.divide(
                ops.sqrt(ops.add(delta_avg, self.epsilon)),
                ops.sqrt(ops.add(square_avg, self.epsilon)),
            ),
        )

    def _effective_step(self, variable, lr, gradient):
        g = self._given_gradient(gradient, variable)
        return ops.multiply(self._effective_learning_rate(variable, lr), g)
