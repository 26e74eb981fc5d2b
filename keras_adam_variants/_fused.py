"""Fused update kernels for the TensorFlow backend: one pass over the memory per variable.

An optimizer step is memory-bound. Written with ``keras.ops``, each arithmetic step of an update
is its own kernel with its own temporary, so without XLA a step reads and writes each parameter's
worth of memory 10-30 times. Two ways to do it in one pass, both giving the class's documented
formula (only float32 rounding may differ from the ``keras.ops`` path):

* TensorFlow's fused training kernels (``tf.raw_ops.ResourceApply*``) where one computes exactly
  our formula, possibly after rescaling a scalar:

  ======================  =====================================================================
  Adam                    ``ResourceApplyAdam`` with β powers 0, lr' = lr·√(1−β2^t)/(1−β1^t)
                          and ε' = ε·√(1 − β2^t): the kernel's lr'·m/(√v + ε') equals
                          lr·m̂/(√v̂ + ε). The kernel averages with β rounded to the variable's
                          dtype (it takes β, not 1 − β), so the corrections use that β, exactly
                          (`KavOptimizer._bias_correction`); passing β^t instead would round
                          1 − β^t (0.1% off at β2 = 0.99999).
  AMSGrad                 ``ResourceApplyAdamWithAmsgrad`` (v̂ ← max(v̂, v), then
                          lr'·m/(√v̂ + ε') with β powers 0): lr' = lr, ε' = ε give the paper's
                          form; lr', ε' as for Adam the bias-corrected one.
                          It has no XLA kernel, so it is not used under ``jit_compile``;
                          there the ``keras.ops`` path computes the same folded form.
  Adagrad                 ``ResourceApplyAdagradV2``: G += g²; θ −= lr·g/(√G + ε), exact.
  Adadelta                ``ResourceApplyAdadelta``: Zeiler's Algorithm 1 with lr, exact.
  SGD                     ``ResourceApplyGradientDescent``; with momentum ``ResourceApplyMomentum``
                          (b ← μb + g; θ −= lr·b, or lr·(g + μb) with ``use_nesterov``): PyTorch's
                          form. (``ResourceApplyKerasMomentum`` keeps lr in the buffer: not ours.)
  ======================  =====================================================================

* Where no kernel computes our formula (RMSprop: ε outside the root, lr outside the momentum
  buffer; Adamax: ε inside the max), a small ``tf.function(jit_compile=True)`` per rule that reads
  the variable and its slots, applies the formula and writes them back: XLA fuses it into one
  loop. Inside an outer ``jit_compile`` function the ``keras.ops`` path is used instead (XLA fuses
  it there anyway).

Under an outer ``jit_compile`` every optimizer's step compiles to the same loops over the
parameters as Keras' built-in of the same name (three per variable for Adam: m, v, then θ, since
XLA on CPU fuses one output per loop), with no more divisions or roots per parameter;
``tests/test_xla_step.py`` reads this from the optimized HLO.

The ``keras.ops`` path stays the fallback: other backends, dtypes other than float32/float64
(bfloat16, float16: the kernels compute in that dtype, the ``keras.ops`` path is the reference
behaviour), and ``ENABLED = False`` (set it to compare, or if a kernel misbehaves somewhere).
Sparse gradients are densified first (as the ``keras.ops`` path does), then fused.
"""

import keras

# Set to False to force the keras.ops path everywhere (benchmarks compare the two).
ENABLED = True

_FUSED_DTYPES = ("float32", "float64")


def available(variable):
    """Whether the fused TensorFlow path can update ``variable``."""
    return (
        ENABLED
        and keras.backend.backend() == "tensorflow"
        and keras.backend.standardize_dtype(variable.dtype) in _FUSED_DTYPES
    )


def in_xla_context():
    """True inside a function being compiled with XLA (``jit_compile=True``); None if unknown.

    ``tf.function(jit_compile=True)`` traces its body inside an XLA control-flow context; this
    asks TensorFlow for it. The module it lives in is not public API: if it ever moves, the answer
    is None and callers take the path that is safe both with and without XLA.
    """
    try:
        from tensorflow.python.framework import ops as tf_ops
        from tensorflow.python.ops import control_flow_util
    except ImportError:  # pragma: no cover - depends on TensorFlow's internals
        return None
    try:
        return bool(control_flow_util.GraphOrParentsInXlaContext(tf_ops.get_default_graph()))
    except Exception:  # noqa: BLE001  pragma: no cover
        return None


def handle(variable):
    """The resource handle of a Keras or TensorFlow variable (the local copy under tf.distribute)."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


def tf():
    import tensorflow

    return tensorflow


# -- XLA-fused rules for the optimizers without a matching TensorFlow kernel ---------------------

_COMPILED = {}


def apply_xla(rule, variables, gradient, *scalars):
    """Apply ``rule`` to ``variables`` (the parameter, then slots) in one XLA-compiled function.

    ``rule(values, g, *scalars)`` takes the variables' current values and returns their new
    values (None for one left unchanged); it is traced once per rule and dtype (the shapes are
    left open, XLA compiles once per shape) and runs as a single fused kernel.
    """
    tf_ = tf()
    dtype = gradient.dtype
    key = (rule, dtype, len(variables))
    fn = _COMPILED.get(key)
    if fn is None:

        def fused(handles, g, scalars):
            values = [tf_.raw_ops.ReadVariableOp(resource=h, dtype=dtype) for h in handles]
            for h, value in zip(handles, rule(values, g, *scalars)):
                if value is not None:
                    tf_.raw_ops.AssignVariableOp(resource=h, value=value)

        fn = tf_.function(fused, jit_compile=True, reduce_retracing=True, autograph=False)
        _COMPILED[key] = fn
    fn([handle(v) for v in variables], gradient, [tf_.cast(s, dtype) for s in scalars])


def rmsprop_rule(centered, momentum):
    """RMSprop's update (see `RMSprop`) as a rule for `apply_xla`: values are θ, E[, ḡ][, b]."""
    key = ("rmsprop", centered, momentum)
    if key not in _RULES:

        def rule(values, g, lr, rho, one_minus_rho, epsilon, mu):
            tf_ = tf()
            theta, square_avg = values[0], values[1]
            rest = values[2:]
            square_avg = square_avg * rho + tf_.square(g) * one_minus_rho
            second_moment = square_avg
            grad_avg = buffer = None
            if centered:
                grad_avg, rest = rest[0], rest[1:]
                grad_avg = grad_avg * rho + g * one_minus_rho
                second_moment = tf_.maximum(square_avg - tf_.square(grad_avg), 0.0)
            step = g / (tf_.sqrt(second_moment) + epsilon)
            if momentum:
                buffer = rest[0] * mu + step
                step = buffer
            new = [theta - lr * step, square_avg]
            if centered:
                new.append(grad_avg)
            if momentum:
                new.append(buffer)
            return new

        _RULES[key] = rule
    return _RULES[key]


def _adamax(values, g, lr_t, beta_1, one_minus_beta_1, beta_2, epsilon):
    """Adamax's update (see `Adamax`); lr_t = lr / (1 − β1^t). Values are θ, m, u."""
    tf_ = tf()
    theta, m, u = values
    m = m + (g - m) * one_minus_beta_1  # decays by β1 itself (see KavOptimizer._assign_average)
    u = tf_.maximum(u * beta_2, tf_.abs(g) + epsilon)
    return [theta - lr_t * (m / u), m, u]


def adamax_rule():
    return _adamax


_RULES = {}
