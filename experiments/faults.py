"""Named points where the tests kill the runner for real (``SIGKILL``), to prove it survives.

``KAV_FAULT_KILL=<name>`` in the environment makes the first :func:`point` of that name in the
process send ``SIGKILL`` to the process itself: no cleanup, no ``finally``, exactly what a crash
or ``kill -9`` at that moment leaves behind. Unset (always, outside tests), :func:`point` does
nothing. Points of ``experiments.train``:

``run_created``      right after the MLflow run exists, before the first checkpoint state;
``state_write``      the first ``state.json`` written to its temporary file, before the rename;
``mid_epoch``        in the middle of the second epoch (after half of its steps);
``checkpoint_write`` a model checkpoint written to its temporary file, before the rename;
``model_logged``     the final model logged to MLflow, before the checkpoint records it.
"""

from __future__ import annotations

import os
import signal

ENV = "KAV_FAULT_KILL"
_fired: set[str] = set()


def armed(name: str) -> bool:
    """True when :func:`point` ``name`` would kill this process."""
    return os.environ.get(ENV) == name and name not in _fired


def point(name: str) -> None:
    """SIGKILL this process if ``$KAV_FAULT_KILL`` is ``name`` (first time only)."""
    if os.environ.get(ENV) == name and name not in _fired:
        _fired.add(name)
        os.kill(os.getpid(), signal.SIGKILL)
