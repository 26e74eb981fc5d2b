"""Print each matrix row's max deviation from its NumPy reference (and from PyTorch) per mode.

Usage: python -m tests.report_deviation      (a report for the issue notes, not a test)
The metric is max |θ_ours − θ_ref| / (1 + |θ_ref|) over all 120 steps of the standard sequence.
"""

from tests.conftest import (
    MODES,
    gradient_sequence,
    initial_theta,
    max_deviation,
    run_optimizer,
    torch_trajectory,
)
from tests.specs import SPECS


def main():
    grads, theta0 = gradient_sequence(), initial_theta()
    print("| row | eager | tf.function | XLA | vs PyTorch (XLA) |")
    print("|---|---|---|---|---|")
    for spec in SPECS:
        expected = spec.reference(theta0, grads, **spec.hyper())
        runs = {mode: run_optimizer(spec.make(), theta0, grads, mode) for mode in MODES}
        cells = [f"{max_deviation(runs[m], expected):.1e}" for m in MODES]
        peer = "—"
        if spec.torch is not None:
            peer = f"{max_deviation(runs['xla'], torch_trajectory(spec, theta0, grads)):.1e}"
        print(f"| {spec.id} | {' | '.join(cells)} | {peer} |")


if __name__ == "__main__":
    main()
