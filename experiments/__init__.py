"""Experiments comparing the optimizers of ``keras_adam_variants`` on real data, logged to MLflow.

Kept apart as in MLCommons AlgoPerf:

* ``experiments.datasets``  -- datasets by name, read through TensorFlow Datasets (TFDS);
* ``experiments.workloads`` -- a dataset + a model builder + loss + metrics, by name;
* ``experiments.train``     -- the one runner: trains one (workload, optimizer) pair, logs one
  MLflow run, checkpoints and resumes (``python -m experiments.train --help``);
* ``experiments.tracking``  -- where runs go (MLflow tracking store) and fast failure when the
  store cannot be reached.

The optimizers themselves come from the package (``keras_adam_variants``).
"""
