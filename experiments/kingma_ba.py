"""Kingma & Ba (2015), section 6: Adam against Adagrad, RMSprop, SGD with Nesterov momentum and
Adadelta on logistic regression (6.1), a multilayer perceptron (6.2) and a CNN (6.3).

    python -m experiments.kingma_ba --section 6.1                     # offline, on digits
    python -m experiments.kingma_ba --section 6.2 --dataset mnist --epochs 45 --data-dir DIR
    python -m experiments.kingma_ba --section 6.1 --dataset imdb_reviews
    python -m experiments.kingma_ba --section 6.3 --dataset cifar10 --lr SGDNesterov=0.05

Each section is :mod:`experiments.compare` run with the paper's optimizers and workload: one
parent MLflow run (experiment ``kav-kingma-ba``) with the table and the learning curves, one
nested run per (optimizer, seed); ``--workers N`` / ``--cluster ADDRESS`` run several trainings
at once (:mod:`experiments.parallel`). The workload is ``<dataset>_<model>`` from
:mod:`experiments.workloads` (model: ``logreg`` for 6.1, ``mlp`` for 6.2, ``cnn`` for 6.3);
``digits`` runs offline, the catalogue datasets (``mnist``, ``fashion_mnist``,
``imdb_reviews``, ``cifar10``) when prepared in the TFDS data dir (``--data-dir`` or
``TFDS_DATA_DIR``).

As in the paper: minibatches of 128; SGD with Nesterov momentum 0.9; in 6.1 every optimizer's
step size decays as α/√t (t = iteration; ``--no-decay`` turns it off). Unlike the paper: the
learning rates are each optimizer's default here (the paper searched a dense grid; pass
``--lr LABEL=VALUE``, or find them with ``experiments.sweep``), no dropout (the paper's 6.1 IMDB
run adds 50% dropout noise to the bag-of-words input, 6.2 and 6.3 use dropout layers), the digits
stand-ins are scaled down, and SFO (6.2) and the 6.3 dropout ablations are not reproduced.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from . import compare  # noqa: E402

SECTIONS = {
    "6.1": ("logreg", "logistic regression (L2-free multiclass logistic regression)"),
    "6.2": ("mlp", "multilayer perceptron (2 hidden layers of ReLU units)"),
    "6.3": ("cnn", "convolutional network"),
}
# label -> (optimizer name, fixed constructor arguments)
OPTIMIZERS = {
    "Adam": ("adam", {}),
    "Adagrad": ("adagrad", {}),
    "RMSprop": ("rmsprop", {}),
    "SGDNesterov": ("sgd", {"momentum": 0.9, "nesterov": True}),
    "Adadelta": ("adadelta", {}),
}
DEFAULT_EPOCHS = 10


def workload_for(section: str, dataset: str) -> str:
    """The workload of ``section`` on ``dataset`` (``ValueError`` if the registry lacks it)."""
    from . import workloads

    model = SECTIONS[section][0]
    name = f"{dataset}_{model}"
    if name not in workloads.names():
        have = sorted(w for w in workloads.names() if w.endswith("_" + model))
        raise ValueError(f"section {section} ({model}) has no workload for dataset {dataset!r}: "
                         f"expected one of {', '.join(have)}")
    return name


def make_arms(section: str, labels: list[str], learning_rates: dict[str, float],
              decay: bool) -> list[compare.Arm]:
    """The paper's optimizers as :class:`experiments.compare.Arm` s. With ``decay`` (section 6.1)
    the learning rate α (the override, else the optimizer's default) becomes α/√t."""
    from . import train
    from .reddi_synthetic import inverse_sqrt_schedule

    arms = []
    for label in labels:
        name, fixed = OPTIMIZERS[label]
        lr = learning_rates.get(label)
        if decay:
            alpha = lr if lr is not None else train.build_optimizer(name, None, fixed).get_config()[
                "learning_rate"]
            arms.append(compare.Arm(label, name, None,
                                    {**fixed, "learning_rate": inverse_sqrt_schedule(alpha)}))
        else:
            arms.append(compare.Arm(label, name, lr, dict(fixed)))
    return arms


def _labels(text: str) -> list[str]:
    lower = {k.lower(): k for k in OPTIMIZERS}
    items = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in items if v.lower() not in lower]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"unknown optimizer(s) {bad or 'none'}: expected a comma list of "
            f"{', '.join(OPTIMIZERS)}")
    return [lower[v.lower()] for v in items]


def _lr(text: str) -> tuple[str, float]:
    label, sep, value = text.partition("=")
    lower = {k.lower(): k for k in OPTIMIZERS}
    try:
        lr = float(value)
        if not sep or label.strip().lower() not in lower or not lr > 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--lr expects LABEL=VALUE with LABEL one of {', '.join(OPTIMIZERS)} and VALUE > 0, "
            f"got {text!r}") from None
    return lower[label.strip().lower()], lr


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.kingma_ba",
        description="Kingma & Ba (2015) section 6 comparisons, logged to MLflow.")
    p.add_argument("--section", required=True, choices=sorted(SECTIONS),
                   help="6.1 logistic regression, 6.2 MLP, 6.3 CNN")
    p.add_argument("--dataset", default="digits",
                   help="digits (offline, default), mnist, fashion_mnist, imdb_reviews (6.1, 6.2), "
                        "cifar10 (6.3); catalogue datasets must be prepared in the TFDS data dir")
    p.add_argument("--optimizers", type=_labels, default=list(OPTIMIZERS),
                   help=f"comma list of {', '.join(OPTIMIZERS)} (default: all)")
    p.add_argument("--lr", type=_lr, action="append", default=[], metavar="LABEL=VALUE",
                   help="learning rate of one optimizer (repeatable; default: its own default)")
    p.add_argument("--no-decay", dest="decay", action="store_false",
                   help="section 6.1: keep the learning rate constant instead of α/√t")
    compare.add_common_arguments(p, "kav-kingma-ba", DEFAULT_EPOCHS)
    return p


def run_cli(argv=None):
    """Parse ``argv``, run the section, report; returns the study's ``StudyResult``."""
    args = build_parser().parse_args(argv)
    try:
        workload = workload_for(args.section, args.dataset)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    decay = args.decay and args.section == "6.1"
    arms = make_arms(args.section, args.optimizers, dict(args.lr), decay)
    title = f"Kingma & Ba {args.section} ({SECTIONS[args.section][0]}) on {args.dataset}"
    params = {"paper": "Kingma & Ba 2015, Adam", "section": args.section,
              "dataset": args.dataset, "lr_decay": "alpha/sqrt(t)" if decay else "none",
              "lr_overrides": ",".join(f"{k}={v:g}" for k, v in args.lr) or "none"}
    print(f"{title}: workload {workload}", file=sys.stderr)
    result, _ = compare.run_and_report(arms, args, study=f"kingma_ba_{args.section}",
                                       title=title, params=params, workload=workload)
    return result


def main(argv=None) -> int:
    """``python -m experiments.kingma_ba``; returns the exit status (0 all runs finished, 1 a
    run failed, 2 bad input, 130 interrupted); then the command that opens the MLflow UI."""
    from . import cli

    status = compare.exit_status(run_cli, argv)
    cli.print_ui_hint_after(argv, status)
    return status


if __name__ == "__main__":
    sys.exit(main())
