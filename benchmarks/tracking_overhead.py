"""What MLflow logging costs per training epoch, to a SQLite store and to a real tracking server.

    python benchmarks/tracking_overhead.py                    # both stores, ~2-3 minutes
    python benchmarks/tracking_overhead.py --stores sqlite --reps 21 --workload digits_cnn

One process, one compiled model of the default workload (``digits_mlp``, batch 128, kav.Adam).
An epoch is ``model.fit`` over one epoch of training batches plus validation, exactly as
``experiments.train`` runs it; "logged" adds the runner's own logging callback
(:class:`experiments.train.RunLogger`: per-step training loss every ``log_every`` steps and the
per-epoch metrics, sent with ``log_batch`` at the end of each epoch) writing to a real run.
Unlogged and logged epochs alternate (A B B A ...), after a warm-up, and the figures are medians,
so that the noise of a shared machine hits both alike. Stores:

* ``sqlite``: ``sqlite:///<tmp>/mlflow.db``, the default store of the experiments;
* ``server``: an ``mlflow server`` started here on 127.0.0.1 at a free port (``--workers 1``,
  ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``, its own process group, stopped at the end),
  reached over HTTP.

The overhead is the median over rounds of (logged epoch / unlogged epoch - 1), the two epochs of
a round being adjacent (pairing removes most of the drift of a shared machine). Besides the
runner's callback as it is (``runner``), ``--modes`` times variants of its flushing, to show where
the cost is and what would remove it: ``null`` (same callback, nothing sent), ``async``
(``log_batch(synchronous=False)``) and ``deferred`` (flush every 15 s and at the end only).
Exit status 1 when the runner's overhead is above ``--limit`` (3% by default) for a store.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(root: str, timeout: float = 240.0):
    """A real ``mlflow server`` on 127.0.0.1 at a free port with a SQLite store under ``root``;
    yields its URI. Own process group, killed (the whole group) on exit."""
    port = free_port()
    mlflow_bin = os.path.join(os.path.dirname(sys.executable), "mlflow")
    cmd = [mlflow_bin if os.path.exists(mlflow_bin) else "mlflow", "server",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{root}/server.db",
           "--artifacts-destination", f"{root}/server-artifacts"]
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    env.pop("MLFLOW_TRACKING_URI", None)
    log_path = os.path.join(root, "server.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        start = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode}; see {log_path}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(uri + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"mlflow server not healthy after {timeout:.0f} s; see {log_path}")
            time.sleep(0.5)
        print(f"mlflow server {uri} healthy after {time.monotonic() - start:.1f} s",
              file=sys.stderr, flush=True)
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


class Bench:
    """One compiled model; ``epoch(logger)`` trains and validates one more epoch."""

    def __init__(self, workload_name: str, batch_size: int, jit: bool, data_dir: str | None):
        import keras

        import keras_adam_variants as kav
        from experiments import datasets, workloads

        self.workload = workloads.get(workload_name)
        self.data = datasets.load(self.workload.dataset, data_dir=data_dir)
        self.batch_size = batch_size
        keras.utils.set_random_seed(0)
        self.model = self.workload.build_model(self.data.input_shape, self.data.num_classes)
        self.model.compile(optimizer=kav.Adam(), loss=self.workload.loss(),
                           metrics=self.workload.metrics(), jit_compile=jit)
        self.steps = self.data.steps_per_epoch(batch_size)
        self.validation = self.data.test_batches(batch_size)
        self.next_epoch = 0

    def epoch(self, callbacks=()) -> float:
        """Seconds of one ``fit`` epoch (training + validation) with ``callbacks``."""
        e = self.next_epoch
        batches = self.data.train_batches(self.batch_size, seed=0, start_epoch=e, end_epoch=e + 1)
        start = time.perf_counter()
        self.model.fit(batches, epochs=e + 1, initial_epoch=e, steps_per_epoch=self.steps,
                       validation_data=self.validation, callbacks=list(callbacks), verbose=0)
        elapsed = time.perf_counter() - start
        self.next_epoch += 1
        return elapsed


MODES = {
    "runner": "experiments.train.RunLogger as it is: log_batch queued at each epoch end (MLflow async), waited for at the end",
    "async": "the same callback, its log_batch calls made with synchronous=False (MLflow's "
             "background queue; waited for at the end of the measurement)",
    "deferred": "the same callback flushing only when its buffer is older than "
                "STEP_FLUSH_SECONDS (15 s) and at the end of training",
    "writer": "the same callback, its flush queueing the metrics on an "
              "experiments.tracking.RunWriter (durable spool + background delivery: the write "
              "path of every run); delivered at the end of the measurement",
    "null": "the same callback with its flush a no-op: the bookkeeping and Keras' synchronous "
            "per-batch callback path, nothing sent (isolates what MLflow itself costs)",
}


def logger_class(mode: str):
    """The runner's logging callback, or a variant of its flushing (see ``MODES``)."""
    from experiments import train

    if mode == "runner":
        return train.RunLogger

    class Variant(train.RunLogger):
        pending = []

        def flush(self):
            if mode == "async" and self.buffer:
                from mlflow.entities import Metric

                now = int(time.time() * 1000)
                metrics = [Metric(k, float(v), now, int(s)) for k, v, s in self.buffer]
                for i in range(0, len(metrics), 1000):
                    self.pending.append(self.client.log_batch(
                        self.run_id, metrics=metrics[i:i + 1000], synchronous=False))
                self.buffer = []
                self.last_flush = time.monotonic()
            elif mode == "writer" and self.buffer:
                self.writer.log_metrics(self.buffer)
                self.buffer = []
                self.last_flush = time.monotonic()
            elif mode == "null":
                self.buffer = []
            elif mode == "deferred":
                if self.buffer and time.monotonic() - self.last_flush > train.STEP_FLUSH_SECONDS:
                    super().flush()
            else:
                super().flush()

        def finish(self):
            if mode == "writer":
                if self.buffer:
                    self.flush()
                assert self.writer.flush(timeout=300), self.writer.status_line()
                self.writer.close()
                return
            for op in self.pending:
                op.wait()
            self.pending.clear()
            if self.buffer:
                train.RunLogger.flush(self)

    return Variant


def measure(bench: Bench, uri: str, reps: int, warmup: int, log_every: int,
            modes=("runner",)) -> dict:
    """Interleaved medians of unlogged epochs and logged epochs of each mode against the store at
    ``uri``; returns ``{"plain": [...], mode: [...], "points": {mode: n}}``."""
    import mlflow

    from experiments import tracking, train

    experiment_id = tracking.setup(uri, "bench-tracking-overhead")
    client = mlflow.MlflowClient(uri)
    runs, loggers = {}, {}
    for mode in modes:
        run = client.create_run(experiment_id, run_name=f"overhead-{bench.workload.name}-{mode}")
        state = {"global_step": 0, "history": {}, "epoch": 0}
        # One callback per mode kept across epochs (its buffer and flush clock persist, as in
        # one long fit); its run and step counter persist too, so steps keep increasing.
        cls = logger_class(mode)
        loggers[mode] = cls(client, run.info.run_id, bench.data, bench.batch_size, log_every,
                            state, None, {})
        if mode == "writer":
            loggers[mode].writer = tracking.RunWriter(
                uri, run.info.run_id, tempfile.mkdtemp(prefix="kav-spool-"))
        # One fit per epoch here, standing for one long fit: the end-of-training flush (and the
        # runner's wait for its queued batches) happens once, after the measurement.
        loggers[mode].on_train_end = lambda logs=None: None
        runs[mode] = run.info.run_id

    contenders = ["plain", *modes]
    samples = {name: [] for name in contenders}

    def one(name):
        return bench.epoch() if name == "plain" else bench.epoch([loggers[name]])

    for _ in range(warmup):
        for name in contenders:
            one(name)
    for rep in range(reps):
        for name in (contenders if rep % 2 == 0 else contenders[::-1]):
            samples[name].append(one(name))
    points = {}
    for mode in modes:
        logger = loggers[mode]
        if hasattr(logger, "finish"):
            logger.finish()
        elif hasattr(logger, "wait"):
            logger.wait()
        else:
            logger.flush()
        client.set_terminated(runs[mode])
        points[mode] = sum(len(client.get_metric_history(runs[mode], k))
                           for k in ("loss", "val_loss", train.STEP_KEY))
    # The cost of one epoch's flush on its own (less exposed to noise than epoch differences):
    # one synchronous log_batch of what the runner sends per epoch (7 epoch metrics + step losses).
    from mlflow.entities import Metric

    run = client.create_run(experiment_id, run_name="flush-latency")
    per_epoch = 7 + max(1, bench.steps // max(1, log_every))
    flush = []
    for i in range(30):
        now = int(time.time() * 1000)
        metrics = [Metric(f"m{j}", float(i + j), now, i) for j in range(per_epoch)]
        start = time.perf_counter()
        client.log_batch(run.info.run_id, metrics=metrics)
        flush.append(time.perf_counter() - start)
    # The same through a RunWriter: what the caller waits is the spool append (fsync), not the
    # store; measured per call, then everything delivered.
    writer = tracking.RunWriter(uri, run.info.run_id, tempfile.mkdtemp(prefix="kav-spool-"))
    enqueue = []
    for i in range(30):
        start = time.perf_counter()
        writer.log_metrics([(f"w{j}", float(i + j), i) for j in range(per_epoch)])
        enqueue.append(time.perf_counter() - start)
    writer.flush(timeout=300)
    writer.close()
    client.set_terminated(run.info.run_id)
    return {"enqueue_s": statistics.median(enqueue[5:]), "samples": samples, "points": points, "flush_s": statistics.median(flush[5:]),
            "flush_metrics": per_epoch}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="digits_mlp")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--reps", type=int, default=15, help="epochs of each kind per store")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--log-every", type=int, default=10,
                        help="the runner's step-loss interval (its default 10)")
    parser.add_argument("--jit", action=argparse.BooleanOptionalAction, default=False,
                        help="XLA-compile the train step (default off, as experiments.compare)")
    parser.add_argument("--stores", default="sqlite,server",
                        help="comma list of sqlite, server (default both)")
    parser.add_argument("--modes", default="runner,writer,null,async,deferred",
                        help="logging variants to time against no logging: " +
                             "; ".join(f"{k}: {v}" for k, v in MODES.items()))
    parser.add_argument("--limit", type=float, default=0.03, help="overhead limit (default 3%%)")
    parser.add_argument("--data-dir", default=None, help="TFDS data dir (default: a temp dir)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES):
        parser.error(f"--modes takes a comma list of {', '.join(MODES)}")
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if not stores or set(stores) - {"sqlite", "server"}:
        parser.error("--stores takes a comma list of sqlite, server")

    root = tempfile.mkdtemp(prefix="kav-tracking-overhead-")
    try:
        data_dir = args.data_dir or os.path.join(root, "tfds")
        bench = Bench(args.workload, args.batch_size, args.jit, data_dir)
        print(f"{args.workload}: {bench.data.num_train} training examples, {bench.steps} steps "
              f"of {args.batch_size} + validation per epoch; jit={args.jit}; {args.reps} epochs "
              f"of each kind per store, interleaved, after {args.warmup} warm-up epochs each; "
              f"{os.cpu_count()} CPUs", flush=True)
        results = {}
        for store in stores:
            if store == "sqlite":
                results[store] = measure(bench, f"sqlite:///{root}/mlflow.db", args.reps,
                                         args.warmup, args.log_every, modes)
            else:
                server_root = os.path.join(root, "server")
                os.makedirs(server_root)
                with mlflow_server(server_root) as uri:
                    results[store] = measure(bench, uri, args.reps, args.warmup, args.log_every,
                                             modes)
        print(f"\nmedian seconds per epoch (training + validation), {args.reps} samples each. "
              "overhead: median over rounds of (logged / unlogged - 1), each round's epochs "
              "adjacent; 'vs null' compares with the same callback sending nothing")
        print(f"{'store':7s} {'logging':9s} {'epoch':>9s} {'IQR':>8s} {'overhead':>9s} "
              f"{'vs null':>8s}  points")
        failed = False
        for store, r in results.items():
            samples = r["samples"]
            for name, values in samples.items():
                q = statistics.quantiles(values, n=4)
                med = statistics.median(values)
                over = vs_null = pts = ""
                if name != "plain":
                    paired = statistics.median(a / b - 1 for a, b in zip(values, samples["plain"]))
                    over = f"{paired * 100:7.2f}%"
                    pts = str(r["points"][name])
                    if "null" in samples and name != "null":
                        rel = statistics.median(a / b - 1 for a, b in zip(values, samples["null"]))
                        vs_null = f"{rel * 100:6.2f}%"
                    if name == "runner" and paired > args.limit:
                        failed = True
                label = "none" if name == "plain" else name
                print(f"{store:7s} {label:9s} {med * 1e3:6.1f} ms {(q[2] - q[0]) * 1e3:5.1f} ms "
                      f"{over:>9s} {vs_null:>8s}  {pts}")
        for store, r in results.items():
            base = statistics.median(r["samples"]["plain"])
            print(f"{store}: one synchronous log_batch of an epoch's {r['flush_metrics']} metrics "
                  f"takes {r['flush_s'] * 1e3:.1f} ms (median of 25) = "
                  f"{r['flush_s'] / base:.1%} of an unlogged epoch; queueing it on a RunWriter "
                  f"{r['enqueue_s'] * 1e3:.1f} ms")
        for mode in modes:
            print(f"  {mode}: {MODES[mode]}")
        verdict = "above" if failed else "within"
        print(f"\nthe runner's logging overhead is {verdict} the {args.limit:.0%} limit")
        return 1 if failed else 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
