"""The XLA-compiled step of every optimizer does no more work than Keras' same-named built-in.

An optimizer step is memory-bound, and timings on a shared machine move by ±10-20% from run to
run (see benchmarks/step_throughput.py for them). What decides the speed can be read exactly
from the optimized HLO of ``tf.function(apply_gradients, jit_compile=True)`` instead: the
loops over the parameters (XLA fusions whose result has a variable's shape), the bytes each
reads and writes, and the costly elementwise operations in them. For each optimizer against
Keras' built-in of the same name (AMSGrad with ``bias_correction=True`` against
``Adam(amsgrad=True)``), ours must have no more loops, move no more bytes per parameter and
do no more divisions and square roots per parameter (``rsqrt`` counted as a root and a
division, which is what it computes).
"""

import os
import re

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHAPE = (300, 200)  # a shape nothing else in the step has
VARIABLES = 2

CASES = {
    "adam": ("Adam()", "Adam()"),
    "amsgrad": ("AMSGrad()", "Adam(amsgrad=True)"),
    "amsgrad_bias_corrected": ("AMSGrad(bias_correction=True)", "Adam(amsgrad=True)"),
    "rmsprop": ("RMSprop()", "RMSprop()"),
    "rmsprop_centered_momentum": ("RMSprop(centered=True, momentum=0.9)",
                                  "RMSprop(centered=True, momentum=0.9)"),
    "adagrad": ("Adagrad()", "Adagrad()"),
    "adadelta": ("Adadelta()", "Adadelta()"),
    "adamax": ("Adamax()", "Adamax()"),
    "adamw": ("AdamW(weight_decay=0.01)", "AdamW(weight_decay=0.01)"),
    "nadam": ("Nadam()", "Nadam()"),
    "sgd": ("SGD()", "SGD()"),
    "sgd_momentum": ("SGD(momentum=0.9)", "SGD(momentum=0.9)"),
    "sgd_nesterov": ("SGD(momentum=0.9, nesterov=True)", "SGD(momentum=0.9, nesterov=True)"),
}

COSTLY = {"divide": 1, "sqrt": 1, "rsqrt": 2, "power": 1, "exponential": 1, "log": 1}


def compiled_step_hlo(optimizer):
    """The optimized HLO text of one XLA-compiled ``apply_gradients`` on VARIABLES variables."""
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.standard_normal(SHAPE).astype("float32"))
                 for _ in range(VARIABLES)]
    grads = [tf.constant(rng.standard_normal(SHAPE).astype("float32")) for _ in variables]
    optimizer.build(variables)
    step = tf.function(lambda gs: optimizer.apply_gradients(zip(gs, variables)), jit_compile=True)
    return step.experimental_get_compiler_ir(grads)(stage="optimized_hlo")


def step_cost(hlo):
    """(loops, bytes moved per parameter, costly operations per parameter) of a step's HLO."""
    array = r"f32\[%d,%d\]" % SHAPE
    entry = hlo[hlo.index("\nENTRY"):]
    bodies = {m.group(1): m.group(0) for m in re.finditer(r"\n(%\S+) \(.*?\n\}", hlo, re.S)}
    arrays = set(re.findall(r"%(\S+) = " + array, entry))
    loops = moved = costly = 0
    fusion = r"%\S+ = " + array + r"\{1,0\} fusion\((.*?)\), kind=\w+, calls=(%[^,\s]+)"
    for m in re.finditer(fusion, entry):
        operands = [re.sub(r"/\*.*?\*/", "", a).strip().lstrip("%")  # "/*index=5*/%arg2"
                    for a in m.group(1).split(",")]
        loops += 1
        moved += 4 * (1 + sum(a in arrays for a in operands))  # reads + the one write
        body = bodies[m.group(2)]
        costly += sum(w * len(re.findall(array + r"\{1,0\} " + op + r"\(", body))
                      for op, w in COSTLY.items())
    return loops, moved / VARIABLES, costly / VARIABLES


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_xla_step_does_no_more_work_than_keras(case):
    import keras

    import keras_adam_variants as kav

    ours_expr, keras_expr = CASES[case]
    ours = step_cost(compiled_step_hlo(eval("kav." + ours_expr)))
    theirs = step_cost(compiled_step_hlo(eval("keras.optimizers." + keras_expr)))
    assert ours[0] > 0 and theirs[0] > 0  # the parser found the loops
    assert ours[0] <= theirs[0], f"loops over the parameters: ours {ours}, Keras {theirs}"
    assert ours[1] <= theirs[1], f"bytes per parameter: ours {ours}, Keras {theirs}"
    assert ours[2] <= theirs[2], f"divisions/roots per parameter: ours {ours}, Keras {theirs}"
