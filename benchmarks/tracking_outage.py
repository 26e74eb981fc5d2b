"""A tracking server down in the middle of an 8-epoch run: what training waits, what arrives.

    python benchmarks/tracking_outage.py                         # down 180 s, epochs of 45 s
    python benchmarks/tracking_outage.py --outage-s 20 --epoch-s 8

A real ``mlflow server`` (127.0.0.1, free port, own process group) and a loop that logs as the
runner does through :class:`experiments.tracking.RunWriter`: per-step ``train_loss_step`` every
``--step-s`` seconds, the epoch metrics at each epoch end, params/tags/config first and a learning
curve at the end. After epoch 2 the server is SIGKILLed; ``--outage-s`` later it is started again
on the same port and store. Printed: the longest time one logging call took (what training would
have blocked), the writer's status lines during the outage, the wait at the end, and what the
store holds (each metric once, in order; the run FINISHED). Exit status 1 if anything is missing
or duplicated.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--epoch-s", type=float, default=45.0)
    parser.add_argument("--step-s", type=float, default=0.1)
    parser.add_argument("--kill-after-epoch", type=int, default=2)
    parser.add_argument("--outage-s", type=float, default=180.0)
    args = parser.parse_args(argv)

    import mlflow

    from experiments import tracking
    from tests._experiment_helpers import MlflowServer

    root = tempfile.mkdtemp(prefix="kav-outage-")
    server = MlflowServer(os.path.join(root, "server"))
    try:
        t0 = time.monotonic()
        server.start()
        print(f"server {server.uri} healthy after {time.monotonic() - t0:.1f} s", flush=True)
        uri = server.uri
        exp = tracking.setup(uri, "outage")
        run_id, _ = tracking.create_run(uri, exp, "outage-run", run_name="outage")
        writer = tracking.RunWriter(uri, run_id, os.path.join(root, "ckpt"))
        writer.log_params({"epochs": args.epochs, "optimizer": "adam"})
        writer.log_dict({"epochs": args.epochs}, "config.json")
        steps_per_epoch = max(1, int(args.epoch_s / args.step_s))
        worst = 0.0
        waits = []
        killed_at = back_at = None
        step = 0
        last_status = 0.0
        for epoch in range(1, args.epochs + 1):
            for _ in range(steps_per_epoch):
                t = time.perf_counter()
                writer.log_metrics([("train_loss_step", 1.0 / (step + 1), step)])
                worst = max(worst, time.perf_counter() - t)
                step += 1
                time.sleep(args.step_s)
                now = time.monotonic()
                if killed_at and not back_at and now - killed_at >= args.outage_s:
                    pending = writer.pending()
                    t = time.monotonic()
                    server.start()
                    back_at = time.monotonic()
                    print(f"server back after {back_at - killed_at:.0f} s down (start took "
                          f"{back_at - t:.0f} s, {pending} operations were pending)", flush=True)
                if writer.status_line() and now - last_status > 30:
                    print("  progress: " + writer.status_line(), flush=True)
                    last_status = now
            t = time.perf_counter()
            writer.log_metrics([(k, epoch * f, epoch) for k, f in
                                (("loss", 1.0), ("val_loss", 1.1), ("accuracy", 0.1))])
            worst = max(worst, time.perf_counter() - t)
            # a checkpoint: the runner flushes with a short timeout, never longer
            t = time.monotonic()
            flushed = writer.flush(timeout=2.0)
            waits.append(time.monotonic() - t)
            print(f"epoch {epoch}: flushed={flushed} pending={writer.pending()} "
                  f"{writer.status_line()}", flush=True)
            if epoch == args.kill_after_epoch:
                server.kill()
                killed_at = time.monotonic()
                print(f"server killed after epoch {epoch}", flush=True)
        fig_path = os.path.join(root, "curve.txt")
        with open(fig_path, "w") as f:
            f.write("curve")
        writer.log_artifact(fig_path)
        t = time.monotonic()
        ok = writer.finish(timeout=300)
        end_wait = time.monotonic() - t
        writer.close()
        print(f"finish: delivered={ok} after {end_wait:.1f} s", flush=True)

        client = mlflow.MlflowClient(uri)
        run = client.get_run(run_id)
        hist = client.get_metric_history(run_id, "train_loss_step")
        good = [m.step for m in hist] == list(range(step))
        epochs_ok = all([m.step for m in client.get_metric_history(run_id, k)] ==
                        list(range(1, args.epochs + 1)) for k in ("loss", "val_loss", "accuracy"))
        arts = sorted(a.path for a in client.list_artifacts(run_id))
        print(f"store: status {run.info.status}; train_loss_step {len(hist)} values for {step} "
              f"steps, each once in order: {good}; epoch metrics 1..{args.epochs} once each: "
              f"{epochs_ok}; artifacts {arts}")
        print(f"training blocked: longest logging call {worst * 1000:.1f} ms; checkpoint flushes "
              f"waited {max(waits):.1f} s at most (timeout 2 s); end of run waited {end_wait:.1f} s")
        fine = ok and good and epochs_ok and run.info.status == "FINISHED" and \
            arts == ["config.json", "curve.txt"]
        return 0 if fine else 1
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
