"""Helpers for the experiment tests: a digits TFDS data dir prepared once per session, running
``python -m experiments.train`` as a subprocess, and a real ``mlflow server``.

Import the fixture into a test module (``from tests._experiment_helpers import digits_data_dir``)
to use it; the preparation itself runs once per test process whichever module asks first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
_PREPARED = {}


@pytest.fixture(scope="session")
def digits_data_dir(tmp_path_factory) -> str:
    """A TFDS data dir (under pytest's tmp dir) with the ``digits`` dataset prepared in it."""
    if "dir" not in _PREPARED:
        from experiments import datasets

        path = str(tmp_path_factory.mktemp("tfds"))
        datasets.load("digits", data_dir=path)
        _PREPARED["dir"] = path
    return _PREPARED["dir"]


def env(**extra) -> dict:
    """The environment of a subprocess: this checkout importable, TF quiet, no user store and no
    active experiment (``mlflow.set_experiment`` in this process exports MLFLOW_EXPERIMENT_ID,
    which a child would otherwise inherit: its bare ``mlflow.start_run()`` would land there)."""
    e = dict(os.environ)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        e.pop(name, None)
    e["PYTHONPATH"] = REPO + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    e["KERAS_BACKEND"] = "tensorflow"
    e.update({k: str(v) for k, v in extra.items()})
    return e


def train_cmd(*args) -> list[str]:
    return [PYTHON, "-m", "experiments.train", *map(str, args)]


def run_train(*args, cwd, timeout=300, **extra_env) -> subprocess.CompletedProcess:
    """Run ``python -m experiments.train ARGS`` in ``cwd``; return the completed process."""
    return subprocess.run(train_cmd(*args), cwd=cwd, env=env(**extra_env), capture_output=True,
                          text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_process(cmd, cwd, log_path, mode="w", **extra_env) -> subprocess.Popen:
    """``cmd`` in its own process group (stopped with :func:`stop_group`), output to ``log_path``."""
    with open(log_path, mode) as log:
        return subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                env=env(**extra_env), start_new_session=True)


def stop_group(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc``'s process group and wait until the process is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_until_serving(proc: subprocess.Popen, url: str, log_path, timeout=180.0) -> None:
    """Poll ``url`` (e.g. a server's ``/health``) until it answers 200; ``RuntimeError`` with the
    log's tail if ``proc`` exits or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited ({proc.returncode}):\n"
                               + open(log_path).read()[-3000:])
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: not serving after {timeout} s:\n"
                               + open(log_path).read()[-3000:])
        time.sleep(0.3)


@contextlib.contextmanager
def serving(cmd, cwd, url, log_path, timeout=180.0, **extra_env):
    """Run ``cmd`` (a server) in its own process group until ``url`` answers; yield the process;
    kill the group at the end."""
    proc = start_process(cmd, cwd, log_path, **extra_env)
    try:
        wait_until_serving(proc, url, log_path, timeout)
        yield proc
    finally:
        stop_group(proc)


def interrupt_when(cmd, cwd, log_path, ready, timeout=240.0, wait=120.0):
    """Run ``cmd`` in its own process group; once ``ready()`` is true (polled each second while
    it runs), send SIGINT to the group, as Ctrl-C in a terminal does. Returns ``(process,
    output)`` once the process has exited (``process.returncode``; its group id is its pid); the
    group is killed if it is still there when the test gives up."""
    proc = start_process(cmd, cwd, log_path)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, open(log_path).read()[-3000:]
            assert time.monotonic() < deadline, f"not ready after {timeout} s"
            time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=wait)
    finally:
        if proc.poll() is None:
            stop_group(proc)
    return proc, open(log_path).read()


def mlflow_server_cmd(root: str, port: int) -> list[str]:
    """``mlflow server`` on 127.0.0.1:``port``, SQLite store and artifacts under ``root``."""
    return [os.path.join(os.path.dirname(PYTHON), "mlflow"), "server", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{root}/server.db",
            "--artifacts-destination", f"{root}/server-artifacts"]


@contextlib.contextmanager
def mlflow_server(root, timeout=180.0):
    """A real ``mlflow server`` on 127.0.0.1 at a free port, SQLite store and artifacts under
    ``root``; yields its URI. Started in its own process group, stopped by killing that group."""
    with MlflowServer(root) as server:
        yield server.uri


class MlflowServer:
    """A real ``mlflow server`` that a test can kill (SIGKILL to its process group) and start
    again on the same port, SQLite store and artifact root, to stage a tracking outage::

        with MlflowServer(tmp_path) as server:      # started, /health answers
            ... server.uri ...
            server.kill()                           # the port refuses connections
            server.start()                          # same uri, same store

    ``--workers 1`` and ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` keep the start short (still
    7-40 s on 2 busy cores); each start appends to ``<root>/server.log``.
    """

    def __init__(self, root, port: int | None = None):
        self.root = str(root)
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc = None
        os.makedirs(self.root, exist_ok=True)

    def start(self, timeout: float = 240.0) -> "MlflowServer":
        log = os.path.join(self.root, "server.log")
        self.proc = start_process(mlflow_server_cmd(self.root, self.port), self.root, log, "a",
                                  MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        try:
            wait_until_serving(self.proc, self.uri + "/health", log, timeout)
        except RuntimeError:
            self.kill()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL the server's process group and wait until it is gone."""
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def __enter__(self) -> "MlflowServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()


# ---- the runner's failure and kill tests (t8b) ----------------------------------------------------

def mount_read_only(path, source=None):
    """Make ``path`` a read-only mount: a bind of ``source`` remounted read-only, or (no source)
    an empty read-only tmpfs. Tests run as root, so permissions alone would not stop a write.
    Skips the test with the reason if the kernel refuses the mount; undo with :func:`unmount`."""
    path = str(path)
    os.makedirs(path, exist_ok=True)
    if source is None:
        cmds = [["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", path]]
    else:
        cmds = [["mount", "--bind", str(source), path],
                ["mount", "-o", "remount,bind,ro", path]]
    for i, cmd in enumerate(cmds):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            if i:
                unmount(path)
            pytest.skip(f"cannot make a read-only mount ({' '.join(cmd)}: {proc.stderr.strip()})")
    return path


def unmount(path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@contextlib.contextmanager
def read_only(path, source=None):
    """:func:`mount_read_only` for the duration of a ``with`` block."""
    mount_read_only(path, source)
    try:
        yield str(path)
    finally:
        unmount(path)


def error_lines(stderr: str) -> list[str]:
    """The ``error:`` lines of a command's stderr."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def assert_one_error(stderr: str, *needles: str) -> str:
    """Exactly one ``error:`` line, no traceback, each of ``needles`` in the line; return it."""
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def runs_of(uri: str, experiment: str) -> list:
    """Every run of ``experiment`` in the store ``uri`` (any status), oldest first."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = client.search_runs([found.experiment_id], run_view_type=mlflow.entities.ViewType.ALL,
                              order_by=["attributes.start_time ASC"])
    return list(runs)


def metric_steps(uri: str, run_id: str, key: str) -> list[int]:
    import mlflow

    return [m.step for m in mlflow.MlflowClient(uri).get_metric_history(run_id, key)]
