"""Shared helpers of the studies (compare, sweep, reproductions): tables, plots, MLflow logging.

Nothing here trains: these functions turn results into text and figures and put them on an MLflow
run by run id, through the project's one write path (:func:`experiments.tracking.writer_for`):
pass the run's :class:`experiments.tracking.RunWriter` (the calls return at once; the writer
delivers) or an :class:`mlflow.MlflowClient` (a one-shot writer with its own spool, flushed before
the call returns; what a down server did not take stays spooled for ``python -m experiments.sync``).

* :class:`Table` -- rows of dicts, printed aligned on stdout and logged as CSV and markdown.
* :func:`mean_std`, :func:`fmt_mean_std` -- aggregation over seeds (NaN-aware, population std).
* :func:`log_series` -- many (step, value) points of one metric, in ``log_batch`` calls of at most
  1,000 metrics (one by one costs seconds per thousand on SQLite and a minute over HTTP).
* :func:`band_plot` -- one line per group, mean over seeds with a min-max band.
* :class:`Progress` -- one line per finished run: ``[done/total] ... elapsed, ETA``.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from typing import Iterable, Sequence

import numpy as np

MAX_METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call (the writer batches)


# ---- aggregation ------------------------------------------------------------------------------

def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and population standard deviation of ``values`` (NaN if any value is NaN or none)."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std())


def fmt_mean_std(values: Iterable[float], digits: int = 4) -> str:
    """``"0.1234 ± 0.0056"`` over seeds; ``"nan"`` when a run diverged."""
    values = list(values)
    mean, std = mean_std(values)
    if math.isnan(mean):
        return "nan (diverged)" if values else "n/a"
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def finite_or_inf(x: float) -> float:
    """``x`` when finite, else +inf (a diverged run ranks last)."""
    return float(x) if math.isfinite(x) else math.inf


# ---- tables -----------------------------------------------------------------------------------

class Table:
    """A list of rows (dicts) with an ordered set of columns."""

    def __init__(self, columns: Sequence[str], rows: Sequence[dict] = ()):
        self.columns = list(columns)
        self.rows = [dict(r) for r in rows]

    def add(self, **row) -> None:
        self.rows.append(row)

    @staticmethod
    def _cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.6g}"
        return "" if value is None else str(value)

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow([self._cell(row.get(c)) for c in self.columns])
        return buf.getvalue()

    def to_markdown(self) -> str:
        cells = [[self._cell(r.get(c)).replace("|", "\\|") for c in self.columns] for r in self.rows]
        lines = ["| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """Aligned plain text for the terminal."""
        cells = [[self._cell(r.get(c)) for c in self.columns] for r in self.rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(self.columns)]
        line = lambda items: "  ".join(s.ljust(w) for s, w in zip(items, widths)).rstrip()  # noqa: E731
        out = [line(self.columns), line(["-" * w for w in widths])]
        out += [line(row) for row in cells]
        return "\n".join(out) + "\n"

    def log(self, client, run_id: str, name: str) -> list[str]:
        """Log ``<name>.csv`` and ``<name>.md`` to run ``run_id`` (``client``: a RunWriter or an
        MlflowClient, see the module docstring); returns the artifact paths."""
        from .tracking import writer_for

        with writer_for(client, run_id) as writer:
            writer.log_text(self.to_csv(), f"{name}.csv")
            writer.log_text(self.to_markdown(), f"{name}.md")
        return [f"{name}.csv", f"{name}.md"]


# ---- MLflow -----------------------------------------------------------------------------------

def log_series(client, run_id: str, series: dict[str, tuple[Sequence[int], Sequence[float]]],
               timestamp_ms: int | None = None) -> int:
    """Log ``{key: (steps, values)}`` to ``run_id`` (``client``: a RunWriter or an MlflowClient);
    returns the number of points. The writer sends them in ``log_batch`` calls of at most 1,000.

    Non-finite values are skipped (MLflow stores them, but they break most plots and searches).
    ``timestamp_ms`` is accepted for compatibility; the writer stamps values when queued.
    """
    from .tracking import writer_for

    triples = []
    for key, (steps, values) in series.items():
        for step, value in zip(steps, values):
            value = float(value)
            if math.isfinite(value):
                triples.append((key, value, int(step)))
    with writer_for(client, run_id) as writer:
        writer.log_metrics(triples)
    return len(triples)


def log_params(client, run_id: str, params: dict) -> None:
    """Log ``params`` (values turned into strings, at most 6,000 characters each) to ``run_id``
    (``client``: a RunWriter or an MlflowClient)."""
    from .tracking import writer_for

    with writer_for(client, run_id) as writer:
        writer.log_params(params)


def log_figure(client, run_id: str, fig, name: str) -> str:
    """Log a matplotlib figure as ``<name>`` (a .png path) to ``run_id`` and close it."""
    import matplotlib.pyplot as plt
    from .tracking import writer_for

    with writer_for(client, run_id) as writer:
        writer.log_figure(fig, name)
    plt.close(fig)
    return name


# ---- plots ------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def line_styles(n: int) -> list[tuple]:
    """``n`` distinguishable (color, linestyle) pairs: tab10 colours, then tab10 again dashed,
    then dotted, ... (more than 10 optimizers are common here)."""
    import matplotlib

    colors = matplotlib.colormaps["tab10"].colors
    dashes = ["-", "--", ":", "-."]
    return [(colors[i % 10], dashes[(i // 10) % len(dashes)]) for i in range(n)]


def band_plot(curves: dict[str, list[Sequence[float]]], panels: Sequence[tuple[str, str]],
              xlabel: str = "epoch (from 0, as MLflow's step)", title: str | None = None,
              x: Sequence[float] | None = None, logy: Sequence[str] = ()):
    """One panel per ``(key, label)`` in ``panels``; in each, one line per group: the mean over
    seeds with a shaded min-max band.

    ``curves[group]`` is a list (one per seed) of dicts ``{key: values}``. Seeds of unequal
    length are cut to the shortest. ``x`` defaults to 0, 1, 2, ...: the epoch counted from 0,
    the step the runs log each epoch's metrics at (``mlflow.keras.autolog``'s convention), so the
    figure and MLflow's chart view put a value at the same x. Returns the figure.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    styles = line_styles(len(curves))
    for ax, (key, label) in zip(axes[0], panels):
        for (group, per_seed), (color, dash) in zip(curves.items(), styles):
            series = [np.asarray(s[key], dtype=np.float64) for s in per_seed if key in s]
            if not series:
                continue
            n = min(len(s) for s in series)
            if n == 0:
                continue
            arr = np.stack([s[:n] for s in series])
            xs = np.arange(n) if x is None else np.asarray(x[:n])
            with np.errstate(invalid="ignore"):
                mean = np.nanmean(arr, axis=0) if arr.shape[0] > 1 else arr[0]
            (line,) = ax.plot(xs, mean, label=group, lw=1.6, color=color, ls=dash)
            if arr.shape[0] > 1:
                ax.fill_between(xs, np.nanmin(arr, axis=0), np.nanmax(arr, axis=0),
                                color=line.get_color(), alpha=0.2, lw=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        if key in logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if x is None:
            ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---- progress ---------------------------------------------------------------------------------

def fmt_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Prints ``[done/total] what | elapsed | ETA`` after each finished run (to stderr by
    default). The ETA is the mean time per finished run times the runs left."""

    def __init__(self, total: int, stream=None):
        self.total = total
        self.done = 0
        self.start = time.monotonic()
        self.stream = stream if stream is not None else sys.stderr

    def step(self, what: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        print(f"[{self.done}/{self.total}] {what} | elapsed {fmt_duration(elapsed)} | "
              f"ETA {fmt_duration(eta)}", file=self.stream, flush=True)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start
