"""The base class of the package's optimizers: argument checks, config and shared update helpers."""

import inspect
import math

import keras
import numpy as np
from keras import ops

from keras_adam_variants._validation import (
    check_base_arguments,
    check_gradient,
    check_learning_rate,
    check_variable,
)

# Keyword arguments every optimizer passes on to ``keras.optimizers.Optimizer``.
BASE_ARGUMENTS = (
    "weight_decay",
    "clipnorm",
    "clipvalue",
    "global_clipnorm",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "loss_scale_factor",
    "gradient_accumulation_steps",
    "name",
)

BASE_ARGUMENTS_DOC = """
    Every optimizer also takes the keyword arguments of `keras.optimizers.Optimizer`:
    `weight_decay` (decoupled: θ ← θ − lr·weight_decay·θ before the update, as PyTorch's AdamW),
    `clipnorm`, `clipvalue`, `global_clipnorm`, `use_ema`, `ema_momentum`,
    `ema_overwrite_frequency`, `loss_scale_factor`, `gradient_accumulation_steps` and `name`.

    Bad input (stricter than Keras; `keras_adam_variants._validation`): every argument is
    checked at construction and a bad one raises ValueError("Argument `x` must be <range>;
    received x=<value>"). Numbers are real numbers (NumPy scalars and Fractions are stored as
    Python floats; bool, str and complex are refused) and are checked as float32 holds them:
    the learning rate, `clipnorm`, `clipvalue`, `global_clipnorm` and `loss_scale_factor` must be
    finite normal float32 numbers > 0, decay rates must stay below 1 in float32. ε must be at
    least 1e-30: ε = 0 would make the step of a coordinate whose gradients have all been 0 the
    NaN 0/0 (and in float16 variables ε must not round to 0: checked when the optimizer is
    built). `build` refuses variables that are not floating point; `apply` refuses a gradient
    whose static shape differs from its variable's, in eager mode, `tf.function` and XLA.

    The step t = 1, 2, … counts `apply_gradients` calls (``iterations + 1``), as in Keras. A
    variable without a gradient in a call (``None``, or left out of the list) is untouched, its
    slots too, and its next update uses that global t (PyTorch counts steps per parameter
    instead). Bias corrections 1 − β^t are exact to the variable's precision for any t.
"""


class KavOptimizer(keras.optimizers.Optimizer):
    """Base of every optimizer in ``keras_adam_variants``.

    Subclasses list their own hyperparameters in ``_HYPERPARAMETERS`` (the constructor's
    arguments other than ``learning_rate``, in order); ``get_config`` returns them with the base
    class's arguments, so ``from_config(get_config())`` rebuilds the same optimizer.
    """

    _HYPERPARAMETERS = ()

    def __init__(self, learning_rate, **kwargs):
        unknown = sorted(set(kwargs) - set(BASE_ARGUMENTS))
        if unknown:
            allowed = ["learning_rate", *self._HYPERPARAMETERS, *BASE_ARGUMENTS]
            raise ValueError(
                f"{type(self).__name__} got unknown keyword argument(s) {unknown}; "
                f"allowed arguments are: {', '.join(allowed)}."
            )
        learning_rate = check_learning_rate(learning_rate)
        super().__init__(learning_rate=learning_rate, **check_base_arguments(kwargs))

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__doc__ and "{{base_arguments}}" in cls.__doc__:
            cls.__doc__ = cls.__doc__.replace("{{base_arguments}}", BASE_ARGUMENTS_DOC.strip())
        params = inspect.signature(cls.__init__).parameters
        missing = [name for name in cls._HYPERPARAMETERS if name not in params]
        if missing:  # a programming error in the package, caught at import time
            raise TypeError(f"{cls.__name__}._HYPERPARAMETERS names {missing}, not in __init__")

    def get_config(self):
        config = super().get_config()
        if isinstance(config["learning_rate"], float):
            # A float rate lives in a float32 variable; report the shortest decimal that rounds to
            # it (0.01, not 0.009999999776482582), so configs and logged params read as given.
            config["learning_rate"] = float(str(np.float32(config["learning_rate"])))
        config.update({name: getattr(self, name) for name in self._HYPERPARAMETERS})
        return config

    # -- checks at the step: the variables at build time, the gradients at every apply ----------

    def build(self, var_list):
        """Refuse variables this optimizer cannot update, then build as Keras does.

        Raises ValueError for a variable that is not floating point (an int32 variable would
        get a NaN step cast to an integer), or whose dtype rounds ε to 0 (`_denominator_floors`).
        """
        floors = self._denominator_floors()
        for variable in var_list:
            check_variable(type(self).__name__, variable, floors)
        super().build(var_list)

    def _denominator_floors(self):
        """{argument: value} keeping the update's denominators > 0; one must be nonzero in a
        variable's dtype. ε for every optimizer that has one (Adagrad adds its accumulator)."""
        return {"epsilon": self.epsilon} if hasattr(self, "epsilon") else {}

    def apply(self, grads, trainable_variables=None):
        """Keras' ``apply``, after checking each gradient's static shape against its variable's.

        Raises ValueError for a gradient whose shape differs from its variable's (several
        update rules would otherwise broadcast a shape-(1,) gradient over the whole variable)
        and for a complex gradient. Shapes are checked when traced, so this costs nothing per step in a
        ``tf.function`` or under XLA; sizes unknown at trace time are not checked.
        """
        grads = list(grads)
        if trainable_variables is not None:
            trainable_variables = list(trainable_variables)
            variables = trainable_variables
        else:
            variables = self._trainable_variables if self.built else []
        if not self.built:  # the variables first (`build` checks them too): a complex variable
            floors = self._denominator_floors()  # is named as such, not by its gradient
            for variable in variables:
                check_variable(type(self).__name__, variable, floors)
        for gradient, variable in zip(grads, variables):
            check_gradient(type(self).__name__, gradient, variable)
        return super().apply(grads, trainable_variables)

    # -- helpers for update_step -------------------------------------------------------------

    def _slot(self, slots, variable):
        """The slot of ``variable`` in the list ``slots`` (one entry per trainable variable)."""
        return slots[self._get_variable_index(variable)]

    @staticmethod
    def _dense(gradient, variable):
        """The gradient as a dense tensor of the variable's dtype.

        Sparse gradients (``tf.IndexedSlices`` from ``Embedding``) are scattered into zeros, with
        duplicate indices summed, so every optimizer gives exactly the dense-gradient update.
        """
        if hasattr(gradient, "indices") and hasattr(gradient, "dense_shape"):
            gradient = ops.add(ops.zeros_like(variable), gradient)
        return ops.cast(gradient, variable.dtype)

    def _step(self):
        """t, the number of this update counting from 1, as float32.

        t is global: ``iterations + 1``, the number of `apply_gradients` calls so far, this one
        included (Keras' convention). A variable that gets no gradient in a call (``None``, or left
        out of the list) is left untouched by it, slots included, and its next update uses the
        global t: no optimizer keeps a per-variable step count. PyTorch differs: it counts steps
        per parameter (``state["step"]``), so its bias corrections for such a parameter lag.
        """
        return ops.cast(self.iterations + 1, "float32")

    @staticmethod
    def _compute_dtype(variable):
        """float64 for float64 variables, else float32: where scalars of an update are computed."""
        float64 = keras.backend.standardize_dtype(variable.dtype) == "float64"
        return "float64" if float64 else "float32"

    def _beta_power(self, beta, step=None, dtype="float32"):
        """beta**t = exp(t·log beta), log beta taken in Python's double; t is this update's step
        (`_step`) unless ``step`` is given. For 1 − beta**t use `_bias_correction`."""
        t = self._step() if step is None else step
        return ops.exp(ops.multiply(ops.cast(t, dtype), _log(beta)))

    def _bias_correction(self, beta, variable, step=None, beta_rounded_to=None):
        """1 − beta**t in ``variable``'s dtype, exact to its rounding for any t and beta in (0, 1).

        Computed as −expm1(t·log beta) with log beta in Python's double and the product in
        float32 (float64 for float64 variables): no cancellation, whereas 1 − beta**t in float32
        loses the digits of beta beyond float32 (β2 = 0.999 makes Adam's first step 0.9999933·lr
        instead of lr; β2 = 0.99999, 1.00068·lr). beta = 0 gives 1.

        ``beta_rounded_to``: a dtype; beta is first rounded to it. The fused TensorFlow kernels
        take β in the variable's dtype and average with that rounded β; their bias correction
        must use the same β to stay exact (see `_fused`).
        """
        t = self._step() if step is None else step
        dtype = self._compute_dtype(variable)
        if beta_rounded_to is not None:
            beta = float(np.asarray(beta, keras.backend.standardize_dtype(beta_rounded_to)))
        if beta == 0:
            return ops.ones((), variable.dtype)
        correction = ops.negative(ops.expm1(ops.multiply(ops.cast(t, dtype), _log(beta))))
        return ops.cast(correction, variable.dtype)

    @staticmethod
    def _fused_for(variable):
        """The fused-kernel module (`_fused`) when it can update ``variable``, else None.

        TensorFlow backend and float32/float64 variables only; everything else takes the
        ``keras.ops`` path, which is the reference behaviour.
        """
        from keras_adam_variants import _fused

        return _fused if _fused.available(variable) else None

    def _assign_average(self, average, value, decay):
        """average ← decay·average + (1 − decay)·value, the exponential moving average.

        Written average + (1 − decay)·(value − average) with 1 − decay taken in Python's double:
        only 1 − decay is rounded to the variable's dtype, so the average decays by decay itself
        (0.99999 in float32 is 0.99998999, whose 1 − β is 0.14% off), consistent with the exact
        bias correction (`_bias_correction`).
        """
        self.assign_add(average, ops.multiply(ops.subtract(value, average), 1 - decay))

    # -- the adaptive step, read from the slots (see `effective_learning_rate`) -----------------

    def effective_learning_rate(self, variable):
        """The per-parameter learning rate this optimizer applies now, from its slots.

        A tensor of ``variable``'s shape and dtype: the factor that multiplies the optimizer's
        direction (its momentum estimate, or the gradient) in the update, with the state as
        the last step (t = ``iterations``) left it and the current learning rate. For Adam it is
        lr / (√v̂ + ε); each class's docstring gives its own formula. Nothing is changed, so it
        may be called at any time, eagerly or inside a `tf.function`. Before the first step it
        reflects the initial (zero) state. Decoupled weight decay is not included.
        """
        return self._effective_learning_rate(variable, self._current_learning_rate(variable))

    def effective_step(self, variable, gradient=None):
        """The step θ ← θ − step this optimizer takes with its current state, from its slots.

        For optimizers whose step is a function of their state (Adam: lr·m̂/(√v̂ + ε)) this is
        exactly the last step taken (weight decay aside). Optimizers whose step also needs the
        current gradient (Adagrad, RMSprop without momentum, Adadelta, Nadam, plain SGD) take it
        as ``gradient``; given the last step's gradient, they too return that step (Adadelta
        reads E[Δ²] after the step, so it gives the step it would take now). Nothing is changed.
        """
        return self._effective_step(variable, self._current_learning_rate(variable), gradient)

    def _effective_learning_rate(self, variable, lr):
        raise NotImplementedError(f"{type(self).__name__} does not define its effective rate.")

    def _effective_step(self, variable, lr, gradient):
        raise NotImplementedError(f"{type(self).__name__} does not define its effective step.")

    def _current_learning_rate(self, variable):
        return ops.cast(self.learning_rate, variable.dtype)

    def _last_step(self):
        """t of the last step taken, ``iterations`` (1 before the first step), as float32."""
        return ops.cast(ops.maximum(self.iterations, 1), "float32")

    def _bias_correction_now(self, beta, variable):
        """1 − beta**t for the last step taken, t = ``iterations``: for the effective rates.

        With beta rounded as the update that averaged the moments rounded it
        (`_kernel_beta_dtype`), so that the effective step is the step taken."""
        return self._bias_correction(
            beta, variable, self._last_step(), beta_rounded_to=self._kernel_beta_dtype(variable)
        )

    def _kernel_beta_dtype(self, variable):
        """The dtype a fused kernel rounds β to when it updates ``variable``; None where the
        moments are averaged with β itself (the ``keras.ops`` path). Classes whose update hands
        β to a kernel override it."""
        return None

    def _given_gradient(self, gradient, variable):
        """The dense ``gradient`` an effective step needs, or a clear error if it is missing."""
        if gradient is None:
            raise ValueError(
                f"{type(self).__name__}'s step depends on the current gradient, which it does "
                "not store: call effective_step(variable, gradient)."
            )
        return self._dense(gradient, variable)


def _log(beta):
    """log beta in Python's double (beta > 0), as a float the backend takes as a scalar."""
    return math.log(beta)
