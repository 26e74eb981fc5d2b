"""LazyAdam against Adam on a large embedding: time per training step.

A 1,000,000 × 64 `Embedding` (256 MB of float32 weights, 512 MB of moments) feeding a mean and a
`Dense(1)`; each batch looks up 256 × 16 ids. Adam densifies the embedding's sparse gradient and
updates every row of the weights and both moments each step; LazyAdam updates the ≤ 4,096 rows the
batch touched. Both models are trained with `train_on_batch` (Keras' compiled train function),
timed interleaved (A B B A …) after a warm-up, median of the samples; with and without XLA.

Measured on the shared 2-core development machine (median ms/step, 5 samples of 10 steps):
jit_compile=True: Adam 686, LazyAdam 11 (62x faster); jit_compile=False: Adam 509, LazyAdam 455
(1.1x). Without XLA, TensorFlow switches a variable that sparse ops touch into "copy-on-read"
mode, and Keras 3's `Embedding` reads the whole table densely in every forward pass, which then
copies 256 MB per step: the lazy update's saving is eaten by that copy. Use LazyAdam with
`jit_compile=True` (which `"auto"` does not select on CPU).

    python benchmarks/lazy_adam.py [--rows 1000000] [--dim 64] [--steps 10] [--jit {both,on,off}]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_adam_variants as kav  # noqa: E402


def build(optimizer, rows, dim, jit):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((16,), dtype="int32"),
            keras.layers.Embedding(rows, dim),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=optimizer, loss="mse", jit_compile=jit)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="steps per sample")
    parser.add_argument("--reps", type=int, default=5, help="samples per optimizer")
    parser.add_argument("--jit", choices=["both", "on", "off"], default="both")
    args = parser.parse_args()
    for jit in {"both": (True, False), "on": (True,), "off": (False,)}[args.jit]:
        run(args, jit)


def run(args, jit):

    rng = np.random.default_rng(0)
    batches = [
        (
            rng.integers(0, args.rows, (args.batch, 16)).astype(np.int32),
            rng.standard_normal((args.batch, 1)).astype(np.float32),
        )
        for _ in range(args.steps)
    ]
    models = {
        "Adam": build(kav.Adam(), args.rows, args.dim, jit),
        "LazyAdam": build(kav.LazyAdam(), args.rows, args.dim, jit),
    }

    def sample(model):
        start = time.perf_counter()
        for x, y in batches:
            loss = model.train_on_batch(x, y)
        float(loss)  # wait for the last step
        return (time.perf_counter() - start) / len(batches)

    for model in models.values():  # warm-up: tracing, compilation, first allocations
        model.train_on_batch(*batches[0])
        model.train_on_batch(*batches[1])
    samples = {name: [] for name in models}
    order = list(models)
    for rep in range(args.reps):
        for name in order if rep % 2 == 0 else order[::-1]:
            samples[name].append(sample(models[name]))

    print(
        f"Embedding {args.rows:,} x {args.dim}, batch {args.batch} x 16 ids, "
        f"jit_compile={jit}, median of {args.reps} samples of {args.steps} steps"
    )
    medians = {name: statistics.median(s) for name, s in samples.items()}
    for name, median in medians.items():
        spread = f"{min(samples[name]) * 1e3:.1f}-{max(samples[name]) * 1e3:.1f}"
        print(f"  {name:9s} {median * 1e3:9.1f} ms/step  (samples {spread} ms)")
    print(f"  LazyAdam is {medians['Adam'] / medians['LazyAdam']:.1f}x faster per step")


if __name__ == "__main__":
    main()
