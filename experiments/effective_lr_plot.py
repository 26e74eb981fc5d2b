"""How the effective learning rates evolve over training: one plot for a study's parent run.

Child runs trained with ``TrainConfig.effective_lr_every`` > 0 carry the metrics of
`kav.callbacks.AdaptiveLRLogger`: ``effective_lr/<layer>/p50`` (the median over the layer's
parameters of the optimizer's effective learning rate) every N steps. This module reads them
back from MLflow and draws one panel per optimizer (Adam, AMSGrad, RMSprop, Adagrad by default),
one line per layer, for the first seed of each (named in the panel and figure titles), on a
log scale. The panel titles check the seed's §3 claims on the real runs: AMSGrad's rates never
increase (v̂ is a running maximum), Adagrad's only decrease (G only grows), while Adam's and
RMSprop's may go both ways (the title says whether they did). (Each parameter's rate being
non-increasing makes every order statistic, the median included, non-increasing too.)
"""

from __future__ import annotations

import numpy as np

import keras_adam_variants as kav

DEFAULT_OPTIMIZERS = ("Adam", "AMSGrad", "RMSprop", "Adagrad")
NEVER_INCREASE = {"AMSGrad", "Adagrad"}  # with a constant learning rate
# Float32 rounding of the logged rates; a real increase is far larger.
RTOL = 1e-6


def class_name(optimizer: str) -> str | None:
    """The package's class name for an optimizer name, or None (e.g. ``keras_adam``)."""
    try:
        return kav.get(optimizer).__name__
    except ValueError:
        return None


def median_histories(client, run_id: str) -> dict[str, tuple[list[int], list[float]]]:
    """{layer: (steps, p50 values)} of one run's ``effective_lr/<layer>/p50`` metrics."""
    keys = [k for k in client.get_run(run_id).data.metrics
            if k.startswith("effective_lr/") and k.endswith("/p50")]
    out = {}
    for key in sorted(keys):
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        out[key[len("effective_lr/"):-len("/p50")]] = (
            [m.step for m in history], [m.value for m in history])
    return out


def never_increases(values) -> bool:
    values = np.asarray(values, np.float64)
    return bool(np.all(values[1:] <= values[:-1] * (1 + RTOL)))


def figure(client, runs: dict[str, str], title: str = "", seeds: dict[str, int] | None = None):
    """A figure with one panel per optimizer of ``runs`` ({class name: run id}), or None when
    no run has effective-learning-rate metrics. ``seeds`` ({class name: seed}) puts the seed
    each panel shows in its title and the figure's."""
    from matplotlib.figure import Figure

    histories = {name: median_histories(client, run_id) for name, run_id in runs.items()}
    histories = {name: h for name, h in histories.items() if h}
    if not histories:
        return None
    fig = Figure(figsize=(4.2 * len(histories), 3.6))
    axes = fig.subplots(1, len(histories), squeeze=False)[0]
    for ax, (name, layers) in zip(axes, histories.items()):
        verdicts = []
        for layer, (steps, values) in layers.items():
            ax.plot(steps, values, label=layer, linewidth=1.2)
            verdicts.append(never_increases(values))
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        claim = ""
        if name in NEVER_INCREASE:
            claim = "\nnever increases: " + ("yes" if all(verdicts) else "NO")
        else:
            claim = "\nmay increase; did here: " + ("yes" if not all(verdicts) else "no")
        seed = f" (seed {seeds[name]})" if seeds and name in seeds else ""
        ax.set_title(f"{name}{seed}{claim}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("median effective learning rate")
    shown = sorted({seeds[n] for n in histories if seeds and n in seeds})
    which = (f", seed {shown[0]}" if len(shown) == 1 else
             f", seeds {', '.join(map(str, shown))}" if shown else "")
    fig.suptitle((title or "Effective learning rates (median over each layer's parameters)")
                 + which, fontsize=11)
    fig.tight_layout()
    return fig


def log_plot(client, parent_run_id: str, outcomes, optimizers=DEFAULT_OPTIMIZERS,
             name: str = "effective_learning_rates.png", title: str = "") -> str | None:
    """Draw `figure` for the first seed of each of ``optimizers`` among ``outcomes`` (objects with
    ``arm.optimizer``, ``seed`` and ``run_id``, as ``experiments.compare.RunOutcome``) and log it
    to ``parent_run_id`` as ``name``. Returns the artifact name, or None if there was nothing."""
    runs, seeds = {}, {}
    for outcome in sorted(outcomes, key=lambda o: o.seed):
        cls = class_name(outcome.arm.optimizer)
        if cls in optimizers and cls not in runs:
            runs[cls], seeds[cls] = outcome.run_id, outcome.seed
    ordered = {cls: runs[cls] for cls in optimizers if cls in runs}
    fig = figure(client, ordered, title, seeds)
    if fig is None:
        return None
    client.log_figure(parent_run_id, fig, name)
    return name
