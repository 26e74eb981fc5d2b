"""Run a study's trainings: here, in N local worker processes, or on a Dask cluster.

A study (compare, sweep, Kingma & Ba) is a list of :class:`Job` s, one per (arm, seed), each a
:class:`experiments.train.TrainConfig` nested under the study's parent MLflow run. :func:`run_jobs`
trains them with one of three engines and returns one :class:`JobResult` per job, in job order,
whatever order they finished in:

* ``workers=1`` (no cluster): one after the other in this process.
* ``workers=N``: N processes, fed batches of jobs (:func:`batches`: the seeds of one optimizer
  go to one process, which traces their model once, :mod:`experiments.model_reuse`; each result
  is reported as it finishes): on a CPU this process and N - 1 of a
  :class:`concurrent.futures.ProcessPoolExecutor` (``spawn``: a fresh interpreter per worker, no
  TensorFlow state copied by ``fork``); with ``device="gpu"`` N spawned ones. On a CPU each spawned
  worker gets ``cores // N`` TensorFlow threads (so N workers do not fight over the cores); with
  ``device="gpu"`` each worker sees one GPU (``CUDA_VISIBLE_DEVICES``).
* ``cluster=ADDRESS``: the tasks go to a Dask distributed scheduler (``dask scheduler`` /
  ``dask worker``; install with ``pip install "keras-adam-variants[cluster]"``), each asking for
  one ``GPU`` resource with ``device="gpu"``. Every worker logs its run to the tracking server
  the jobs name, so that server must be reachable from every machine.

Failures: a job that raises is reported in its :class:`JobResult` (``status="FAILED"``,
``error`` one line), its MLflow run marked FAILED, and the other jobs go on. Ctrl-C (SIGINT):
every running training stops, its run is marked KILLED, jobs not started are dropped, and
:class:`StudyInterrupted` is raised; the caller marks the parent KILLED. Local workers ignore
SIGINT themselves (a Ctrl-C in a terminal reaches the whole process group) and are stopped by
the parent with SIGTERM, which they turn into a clean stop of the current run; cluster jobs
check a Dask ``Event`` at each training step.

Why Dask rather than Ray: Dask distributed is a pure-Python pip install of a few MB that starts
a scheduler and a worker in seconds on 2 cores, needs no daemon beyond them, and maps a study
one-to-one onto ``Client.submit`` with worker ``resources`` for GPUs; Ray's wheel is ~60 MB
with a raylet, a GCS server and a dashboard per node, more than a study of independent
trainings needs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import math
import multiprocessing
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

CLUSTER_ENV = "DASK_SCHEDULER_ADDRESS"  # Dask's own variable for the default scheduler
STOP_GRACE_S = 60.0  # how long stopped workers get to mark their runs KILLED


class StudyInterrupted(KeyboardInterrupt):
    """The study was stopped (Ctrl-C / SIGINT, or SIGTERM in a worker)."""


@dataclass(frozen=True)
class Job:
    """One training of a study: ``config`` (an ``experiments.train.TrainConfig``) nested under
    ``parent_run_id``. ``index`` orders results; ``label`` and ``seed`` name it in messages."""

    index: int
    label: str
    seed: int
    config: object
    parent_run_id: str


@dataclass
class JobResult:
    """What one job did: ``status`` is the MLflow status of its run (FINISHED, FAILED or KILLED);
    ``history`` maps each per-epoch key to its values (empty when it failed early); ``error`` is
    one line when it failed; ``wall_s`` is seconds in the worker; ``worker`` names the process."""

    index: int
    run_id: str | None
    status: str
    history: dict = field(default_factory=dict)
    wall_s: float = math.nan
    error: str | None = None
    worker: str = ""


# ---- engine choice --------------------------------------------------------------------------

def gpu_count() -> int:
    """NVIDIA GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else ``nvidia-smi
    -L`` (0 when there is no driver). Does not import TensorFlow."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def gpu_ids() -> list[str]:
    """The GPU ids to hand out, one per worker (``CUDA_VISIBLE_DEVICES`` order, else 0..n-1)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    return [str(i) for i in range(gpu_count())]


def default_workers(device: str = "cpu") -> int:
    """The core count (``os.cpu_count()``), or the GPU count with ``device="gpu"``."""
    if device == "gpu":
        return max(1, gpu_count())
    return max(1, os.cpu_count() or 1)


def check_engine(workers: int, device: str, cluster: str | None, tracking_uri: str) -> None:
    """Raise ``ValueError`` (one line) when the engine cannot run: ``workers`` < 1, more GPU
    workers than GPUs, or a cluster with a tracking store its workers cannot share."""
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if cluster:
        if not tracking_uri.startswith(("http://", "https://")):
            raise ValueError(
                f"--cluster {cluster}: the workers log to the tracking store, and {tracking_uri} "
                "is a file of this machine; start a tracking server (python -m experiments.server"
                " or mlflow server) and pass --tracking-uri http://HOST:PORT")
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ValueError("--cluster needs Dask distributed: pip install "
                             "'keras-adam-variants[cluster]' (or pip install distributed)"
                             ) from None
    elif device == "gpu" and not gpu_ids():
        raise ValueError("--device gpu: no NVIDIA GPU visible here (nvidia-smi lists none, or "
                         "CUDA_VISIBLE_DEVICES is empty); use --device cpu")
    elif device == "gpu" and workers > 1 and workers > len(gpu_ids()):
        raise ValueError(f"--workers {workers} with --device gpu needs one GPU per worker; "
                         f"{len(gpu_ids())} visible (CUDA_VISIBLE_DEVICES / nvidia-smi)")


# ---- one job, in whatever process runs it ---------------------------------------------------

# Per-process state: the stop check of cluster jobs, whether a job is training, whether this
# process was told to stop (then any error of the current job means "stopped", and no new job
# starts: MLflow or Keras code may wrap the KeyboardInterrupt in another exception).
_PROCESS = {"stop": None, "in_job": False, "stopping": False}


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _run_id_probe(stop=None):
    """A Keras callback that records the active MLflow run's id when training starts (so a run
    that fails or is stopped can be marked, whatever ``train.run`` did before raising); with
    ``stop`` (a function), it raises :class:`StudyInterrupted` at the first training step where
    ``stop()`` is true."""
    import keras
    import mlflow

    class RunIdProbe(keras.callbacks.Callback):
        run_id = None

        def on_train_begin(self, logs=None):
            active = mlflow.active_run()
            RunIdProbe.run_id = active.info.run_id if active else None

    class StopCheck(RunIdProbe):
        def on_train_batch_begin(self, batch, logs=None):
            if stop():
                raise StudyInterrupted("stopped by the study")

    return StopCheck() if stop is not None else RunIdProbe()


def _find_run(job: Job) -> str | None:
    """The run of ``job`` under its parent, by run name (when the probe did not see it start)."""
    import mlflow

    try:
        client = mlflow.MlflowClient(job.config.tracking_uri)
        runs = client.search_runs(
            [client.get_experiment_by_name(job.config.experiment).experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{job.parent_run_id}' and "
                          f"tags.mlflow.runName = '{job.config.run_name}'")
    except Exception:  # noqa: BLE001 - best effort: the parent sweeps RUNNING children anyway
        return None
    return runs[0].info.run_id if runs else None


def _running_children(job: Job) -> list:
    import mlflow

    try:
        client = mlflow.MlflowClient(job.config.tracking_uri)
        experiment = client.get_experiment_by_name(job.config.experiment)
        return client.search_runs([experiment.experiment_id], filter_string=(
            f"tags.mlflow.parentRunId = '{job.parent_run_id}' and attributes.status = 'RUNNING'"))
    except Exception:  # noqa: BLE001
        return []


def _terminate(tracking_uri, run_id: str | None, status: str) -> None:
    if run_id is None:
        return
    import mlflow

    try:
        mlflow.MlflowClient(tracking_uri).set_terminated(run_id, status)
    except Exception:  # noqa: BLE001 - the parent's sweep marks it
        pass


_MODELS = threading.local()  # per thread: a Dask worker runs several jobs at once in threads


def _runner_hooks(train, job: Job) -> dict:
    """Keyword arguments for ``train.run``: ``models``, this process's (this thread's)
    :class:`experiments.model_reuse.CompiledModels`, so that seeds of one optimizer trained here
    one after the other trace ``fit``'s functions once; none for ``strategy="mirrored"``."""
    if getattr(job.config, "strategy", "none") != "none":
        return {}
    models = getattr(_MODELS, "models", None)
    if models is None:
        from .model_reuse import CompiledModels

        models = _MODELS.models = CompiledModels()
    return {"models": models}


def train_job(job: Job) -> JobResult:
    """Train ``job`` in this process and return its :class:`JobResult`; never raises for a
    failed training (the result says FAILED), raises :class:`StudyInterrupted` when stopped
    (after marking the run KILLED)."""
    from . import train

    if _PROCESS["stopping"]:
        raise StudyInterrupted(f"{job.label} seed {job.seed} not started: the study is stopping")
    probe = _run_id_probe(_PROCESS["stop"])
    start = time.monotonic()
    worker = f"{os.uname().nodename}:{os.getpid()}"
    _PROCESS["in_job"] = True
    try:
        result = train.run(job.config, parent_run_id=job.parent_run_id, callbacks=[probe],
                           **_runner_hooks(train, job))
    except BaseException as err:
        if not (isinstance(err, KeyboardInterrupt) or _PROCESS["stopping"]):
            if not isinstance(err, Exception):
                raise
            # A failed training: reported in the table, the study goes on.
            run_id = type(probe).run_id or _find_run(job)
            _terminate(job.config.tracking_uri, run_id, "FAILED")
            return JobResult(job.index, run_id, "FAILED", {}, time.monotonic() - start,
                             _one_line(err), worker)
        _PROCESS["stopping"] = True
        signal_safe = _ignore_stop_signals()
        try:
            run_id = type(probe).run_id or _find_run(job)
            _terminate(job.config.tracking_uri, run_id, "KILLED")
        finally:
            _restore_signals(signal_safe)
        raise StudyInterrupted(f"{job.label} seed {job.seed} stopped") from None
    finally:
        _PROCESS["in_job"] = False
    return JobResult(job.index, result.run_id, "FINISHED", result.history,
                     time.monotonic() - start, None, worker)


# ---- sending jobs to other processes -------------------------------------------------------

def pack(job: Job) -> bytes:
    """``job`` as bytes another process can load with :func:`unpack`: cloudpickle (optimizer
    arguments may be objects of classes defined inside functions, e.g. the α/√t schedule of
    ``experiments.reddi_synthetic``), plus the Keras registered name of each object argument,
    so that the copy logs the same ``optimizer.*`` params as the original."""
    import cloudpickle

    names = {}
    for key, value in job.config.opt.items():
        if not isinstance(value, (bool, int, float, str, type(None), list, tuple, dict)):
            import keras

            names[key] = keras.saving.get_registered_name(type(value))
    return cloudpickle.dumps((job, names))


def unpack(payload: bytes) -> Job:
    """The :class:`Job` of :func:`pack`, its object arguments' classes registered with Keras
    under their original names where this process does not know them."""
    import pickle

    job, names = pickle.loads(payload)
    for key, name in names.items():
        import keras

        cls = type(job.config.opt[key])
        if ">" in name and keras.saving.get_registered_name(cls) != name:
            package, _, short = name.partition(">")
            try:
                keras.saving.register_keras_serializable(package=package, name=short)(cls)
            except ValueError:  # a class of that name is registered here already
                pass
    return job


# ---- local worker processes -----------------------------------------------------------------

def _ignore_stop_signals():
    """Ignore SIGINT and SIGTERM (while a stopped run is being marked); returns the old
    handlers (None outside the main thread, where handlers cannot be changed)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(old) -> None:
    for sig, handler in (old or {}).items():
        signal.signal(sig, handler)


def _on_sigint(signum, frame):
    _PROCESS["stopping"] = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def _trains_here():
    """This process trains jobs in the block: Ctrl-C (SIGINT) marks it stopping (a run about to
    start is not started) before the ``KeyboardInterrupt``; the old handler comes back after.
    Outside the main thread, where handlers cannot be changed, only the flag is reset."""
    _PROCESS["stopping"] = False
    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def _on_sigterm(signum, frame):
    _PROCESS["stopping"] = True
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the cleanup itself is not interrupted
    if not _PROCESS["in_job"]:
        os._exit(0)  # idle between jobs: nothing to clean up
    raise StudyInterrupted("worker stopped by SIGTERM")


def _init_worker(gpu_queue, threads: int, env: dict, results=None) -> None:
    """Start of a local worker process: ignore SIGINT (the parent decides), stop cleanly on
    SIGTERM, take one GPU (or hide them all on CPU), size TensorFlow's thread pools; each
    finished job's result is also put on ``results`` (progress while a batch goes on)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    os.environ.update(env)
    _PROCESS["results"] = results
    if results is not None:
        results.cancel_join_thread()  # progress only: the batch's return value is what counts
    if gpu_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_queue.get()
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") not in ("", "0"):
        from .cli import quiet_tensorflow_import

        quiet_tensorflow_import()  # TF 2.21's oneDNN banner ignores TF_CPP_MIN_LOG_LEVEL
    import tensorflow as tf

    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def _worker_jobs(payloads: list[bytes]) -> list[JobResult]:
    """Train a batch of jobs one after the other in this worker (seeds of one optimizer: the
    compiled model is reused); stops at the first one stopped (returned as KILLED)."""
    done = []
    for payload in payloads:
        job = unpack(payload)
        try:
            result = train_job(job)
        except StudyInterrupted as stop:
            # Back to the parent as a result, not an exception: this process is about to go.
            done.append(JobResult(job.index, None, "KILLED", {}, math.nan, str(stop)))
            break
        done.append(result)
        if _PROCESS.get("results") is not None:
            _PROCESS["results"].put(result)
    return done


def batches(jobs: list[Job], workers: int) -> list[list[Job]]:
    """``jobs`` cut into batches, each trained by one worker process in order: consecutive jobs
    of one arm (same ``label``: the seeds of one optimizer setting) stay together, so that the
    worker traces their model once (:mod:`experiments.model_reuse`), in pieces of at most
    ``ceil(len(jobs) / workers)`` so that every worker gets work. Job order is kept."""
    cap = max(1, math.ceil(len(jobs) / max(1, workers)))
    out: list[list[Job]] = []
    for job in jobs:
        if out and out[-1][-1].label == job.label and len(out[-1]) < cap:
            out[-1].append(job)
        else:
            out.append([job])
    return out


@dataclass
class LocalPool:
    """Local worker processes started for :func:`run_jobs` (:func:`prestart`)."""

    pool: concurrent.futures.ProcessPoolExecutor
    results: object  # a multiprocessing Queue: each finished job's result, as it finishes
    workers: int  # trainings at once, this process included when ``in_parent``
    spawned: int
    in_parent: bool


def _warm() -> None:
    """A worker's first task: import what a training needs (while the study sets up)."""
    import keras  # noqa: F401
    import mlflow  # noqa: F401
    import tensorflow_datasets  # noqa: F401

    import keras_adam_variants  # noqa: F401
    from . import run_logger, tracking, train  # noqa: F401


def _start_pool(workers: int, device: str) -> LocalPool:
    ctx = multiprocessing.get_context("spawn")
    in_parent = device != "gpu"
    spawned = workers - 1 if in_parent else workers
    gpu_queue = None
    if device == "gpu":
        gpu_queue = ctx.Queue()
        for gpu in gpu_ids()[:workers]:
            gpu_queue.put(gpu)
        threads = 0
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
    env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
           "KERAS_BACKEND": "tensorflow"}
    results = ctx.Queue()
    pool = concurrent.futures.ProcessPoolExecutor(spawned, mp_context=ctx,
                                                  initializer=_init_worker,
                                                  initargs=(gpu_queue, threads, env, results))
    for _ in range(spawned):  # spawns the processes now
        pool.submit(_warm)
    return LocalPool(pool, results, workers, spawned, in_parent)


def prestart(workers: int, device: str, jobs: int, cluster: str | None = None):
    """Start the local worker processes :func:`run_jobs` will use for ``jobs`` jobs with
    ``workers`` (their interpreter and TensorFlow import overlap the study's own setup); None
    when it uses none (one worker or job, or a cluster). Pass it as ``run_jobs(pool=...)``, or
    to :func:`discard` if the study stops before."""
    if cluster or workers <= 1 or jobs <= 1:
        return None
    return _start_pool(min(workers, jobs), device)


def discard(started) -> None:
    """Stop the processes of :func:`prestart` (None: nothing to do) at once."""
    if started is not None:
        _stop_pool(started.pool)


def _local_pool(jobs, workers, device, on_result, started=None):
    """Train ``jobs`` on ``workers`` local processes. On a CPU this process is one of them: it
    has TensorFlow loaded already, so it trains batches in its main thread while ``workers - 1``
    spawned processes train the others (one interpreter and TensorFlow import fewer: about 8 s
    of CPU on 2 cores). With ``device="gpu"`` every worker is a spawned process with one GPU."""
    if started is None or started.workers != workers:
        discard(started)
        started = _start_pool(workers, device)
    pool, results = started.pool, started.results
    spawned, in_parent = started.spawned, started.in_parent
    todo = list(batches(jobs, workers))
    lock = threading.Lock()  # todo, reported and on_result are shared with the feeder thread
    reported: set[int] = set()
    failure: list[BaseException] = []
    stop = threading.Event()

    def report(result: JobResult) -> None:
        with lock:
            if result.index not in reported:
                reported.add(result.index)
                on_result(result)

    def drain() -> None:
        while True:
            try:
                report(results.get_nowait())
            except Exception:  # noqa: BLE001 - queue.Empty (or a half-written item at exit)
                return

    def take():
        with lock:
            return todo.pop(0) if todo else None

    def feed() -> None:
        """Keep ``spawned`` batches in flight on the pool; report what they finish."""
        futures, pending = {}, set()
        try:
            while not stop.is_set():
                while len(pending) < spawned and not stop.is_set():
                    batch = take()
                    if batch is None:
                        break
                    future = pool.submit(_worker_jobs, [pack(job) for job in batch])
                    futures[future] = batch
                    pending.add(future)
                if not pending:
                    return
                done, pending = concurrent.futures.wait(
                    pending, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED)
                drain()
                for future in done:
                    batch = futures[future]
                    try:
                        for result in future.result():
                            report(result)
                    except Exception as err:  # noqa: BLE001 - a worker died (killed, OOM)
                        if stop.is_set():
                            return
                        for job in batch:
                            if job.index in reported:
                                continue
                            result = JobResult(job.index, _find_run(job), "FAILED", {},
                                               math.nan, f"worker process lost: {_one_line(err)}")
                            _terminate(job.config.tracking_uri, result.run_id, "FAILED")
                            report(result)
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            failure.append(err)

    feeder = threading.Thread(target=feed, name="kav-pool-feeder", daemon=True)
    try:
        with _trains_here() if in_parent else contextlib.nullcontext():
            feeder.start()
            while in_parent and not failure:
                batch = take()
                if batch is None:
                    break
                for job in batch:
                    report(train_job(job))
            while feeder.is_alive():
                feeder.join(0.5)
        if failure:
            raise failure[0]
    except BaseException:
        stop.set()
        _stop_pool(pool)
        feeder.join(STOP_GRACE_S)
        raise
    pool.shutdown(wait=True)
    drain()


def _stop_pool(pool) -> None:
    """SIGTERM every worker (each marks its run KILLED and exits), SIGKILL those that are still
    there after :data:`STOP_GRACE_S`."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join(5)


# ---- Dask ------------------------------------------------------------------------------------

def _cluster_job(payload: bytes, event_name: str) -> JobResult:
    """A job on a Dask worker: stops at the next training step once the study's Event is set."""
    from distributed import Event

    job = unpack(payload)
    event = Event(event_name)
    last = {"t": 0.0, "set": False}

    def stop() -> bool:  # ask the scheduler at most once a second
        now = time.monotonic()
        if not last["set"] and now - last["t"] > 1.0:
            last["t"] = now
            last["set"] = event.is_set()
            _PROCESS["stopping"] = last["set"]
        return last["set"]

    # A Dask worker runs many jobs (of many studies) in one process: state per job.
    _PROCESS.update(stop=stop, stopping=event.is_set())
    try:
        return train_job(job)
    except StudyInterrupted as err:
        return JobResult(job.index, None, "KILLED", {}, math.nan, str(err))
    finally:
        _PROCESS.update(stop=None, stopping=False)


def _cluster(jobs, address, device, on_result):
    from distributed import Client, Event, as_completed

    parent = jobs[0].parent_run_id
    event_name = f"kav-stop-{parent}"
    resources = {"GPU": 1} if device == "gpu" else None
    with Client(address, timeout="30s") as client:
        event = Event(event_name, client=client)
        futures = {client.submit(_cluster_job, pack(job), event_name, resources=resources,
                                 key=f"kav-{parent}-{job.index}", pure=False, retries=0): job
                   for job in jobs}
        try:
            for future in as_completed(futures):
                job = futures[future]
                try:
                    result = future.result()
                except Exception as err:  # noqa: BLE001 - the worker died
                    result = JobResult(job.index, _find_run(job), "FAILED", {}, math.nan,
                                       f"cluster worker lost: {_one_line(err)}")
                    _terminate(job.config.tracking_uri, result.run_id, "FAILED")
                on_result(result)
        except BaseException:
            event.set()
            client.cancel([f for f in futures if not f.done()])
            # Cancelled tasks that were training go on until their next step sees the Event,
            # then mark their runs KILLED: wait for that (the caller sweeps what is left).
            deadline = time.monotonic() + STOP_GRACE_S
            while time.monotonic() < deadline and _running_children(jobs[0]):
                time.sleep(1.0)
            raise


# ---- the study's side ------------------------------------------------------------------------

def mark_killed(tracking_uri: str, experiment_id: str, parent_run_id: str) -> int:
    """Mark every child of ``parent_run_id`` still RUNNING as KILLED, then the parent; returns
    how many children were marked here."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}' and "
                                       "attributes.status = 'RUNNING'", max_results=10000)
    for run in children:
        client.set_terminated(run.info.run_id, "KILLED")
    client.set_terminated(parent_run_id, "KILLED")
    return len(children)


def run_jobs(jobs: list[Job], *, workers: int = 1, device: str = "cpu",
             cluster: str | None = None, on_result=None, pool=None) -> list[JobResult]:
    """Train ``jobs`` (see the module doc for the engines) and return their results in job
    order. ``on_result(JobResult)`` is called as each finishes (progress lines). ``pool``: the
    processes of :func:`prestart` for these arguments (used, or stopped when not needed).

    Raises :class:`StudyInterrupted` on Ctrl-C, after every started run is marked KILLED (the
    caller marks the parent: :func:`mark_killed`).
    """
    results: dict[int, JobResult] = {}

    def collect(result: JobResult) -> None:
        results[result.index] = result
        if on_result is not None:
            on_result(result)

    if not jobs:
        discard(pool)
        return []
    if pool is not None and (cluster or workers <= 1 or len(jobs) == 1):
        discard(pool)
        pool = None
    if cluster:
        _cluster(jobs, cluster, device, collect)
    elif workers <= 1 or len(jobs) == 1:
        with _trains_here():
            for job in jobs:
                collect(train_job(job))
    else:
        _local_pool(jobs, min(workers, len(jobs)), device, collect, pool)
    if any(r.status == "KILLED" for r in results.values()):
        raise StudyInterrupted("a worker was stopped")
    return [results[job.index] for job in jobs]


def with_config(job: Job, **changes) -> Job:
    """``job`` with its config's fields changed (a new frozen Job)."""
    return dataclasses.replace(job, config=dataclasses.replace(job.config, **changes))
