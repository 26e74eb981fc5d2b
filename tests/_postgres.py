"""A throwaway PostgreSQL cluster for tests: ``initdb`` in a temporary directory, ``pg_ctl`` on a
free port of 127.0.0.1, stopped and deleted afterwards.

PostgreSQL refuses to run as root, so when the tests run as root the cluster belongs to the
``postgres`` user (Debian's package creates it) and every PostgreSQL command runs through
``runuser -u postgres``. Authentication is ``trust`` (local test cluster only).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile


def bindir() -> str | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` with ``initdb`` and ``pg_ctl``, else the
    directory of an ``initdb`` on PATH, else None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(os.path.realpath(initdb)) if initdb else None


def unavailable_reason() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if bindir() is None:
        return ("PostgreSQL is not installed (Debian: apt-get install postgresql; .ci/run does "
                "it)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to own the cluster"
        if shutil.which("runuser") is None:
            return "running as root and `runuser` is missing"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres_cluster(timeout: float = 60.0):
    """Start a fresh cluster; yield ``(port, superuser_uri)``; stop it (``pg_ctl stop -m
    immediate``, then SIGKILL of its postmaster pid if still alive) and delete its files."""
    bin_ = bindir()
    root = tempfile.mkdtemp(prefix="kav-pg-")
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data, sock, log = (os.path.join(root, n) for n in ("data", "sock", "postgres.log"))
    port = free_port()
    started = False
    try:
        subprocess.run(_as_owner(["mkdir", "-p", sock]), check=True)
        subprocess.run(_as_owner([f"{bin_}/initdb", "-D", data, "-U", "postgres", "--auth=trust",
                                  "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, timeout=timeout)
        options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(_as_owner([f"{bin_}/pg_ctl", "-D", data, "-o", options, "-l", log, "-w",
                                  "-t", str(int(timeout)), "start"]),
                       check=True, capture_output=True, timeout=timeout + 10)
        started = True
        yield port, f"postgresql://postgres@127.0.0.1:{port}/postgres"
    except subprocess.CalledProcessError as err:
        tail = ""
        with contextlib.suppress(OSError):
            with open(log) as f:
                tail = f.read()[-2000:]
        raise RuntimeError(f"PostgreSQL failed: {err.cmd}: {err.stderr!r} {tail}") from None
    finally:
        if started:
            pid = None
            with contextlib.suppress(OSError, ValueError, IndexError):
                with open(os.path.join(data, "postmaster.pid")) as f:
                    pid = int(f.readline())
            stopped = subprocess.run(_as_owner([f"{bin_}/pg_ctl", "-D", data, "-m", "immediate",
                                                "-w", "stop"]), capture_output=True, timeout=60)
            if stopped.returncode != 0 and pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)
        shutil.rmtree(root, ignore_errors=True)
