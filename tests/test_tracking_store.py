"""Opening a tracking store: many processes at once on a new or older-schema SQLite file, and the
one-line, fast failures of :func:`experiments.tracking.open_store` for bad stores.

Real processes (``python -c`` children started together), real SQLite files, real read-only
mounts (tmpfs mounted ``ro``; skipped with the reason when the mount is refused)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest

from experiments import tracking
from tests._experiment_helpers import env

# A child: wait for the common start instant, open the store, create a run, log, finish.
CHILD = r"""
import json, sys, time
start, uri, key = float(sys.argv[1]), sys.argv[2], sys.argv[3]
time.sleep(max(0.0, start - time.time()))
from experiments import tracking
import mlflow
from mlflow.entities import Metric
exp = tracking.setup(uri, "parallel")
run_id, created = tracking.create_run(uri, exp, key, run_name=key)
client = mlflow.MlflowClient(uri)
client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (s + 1), 1000 + s, s) for s in range(5)])
client.set_terminated(run_id)
print(json.dumps({"run_id": run_id, "created": created}))
"""


def start_children(uri: str, n: int, cwd, delay: float = 3.0) -> list[subprocess.Popen]:
    start = time.time() + delay
    return [subprocess.Popen([sys.executable, "-c", CHILD, str(start), uri, f"proc-{i}"],
                             cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for i in range(n)]


def older_schema_store(db: str, revision: str = "867495a8f9d4") -> None:
    """A store as an older MLflow left it: MLflow's initial tables migrated only up to
    ``revision`` (867495a8f9d4 adds the trace tables, MLflow 2.x), so many tables are missing."""
    import sqlalchemy
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    engine = sqlalchemy.create_engine(f"sqlite:///{db}")
    InitialBase.metadata.create_all(engine)
    config = _get_alembic_config(str(engine.url))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def store_summary(db: str) -> dict:
    """What a new client reads from the store (raises if it is unreadable)."""
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("parallel")
    runs = client.search_runs([exp.experiment_id])
    return {
        "runs": sorted(r.data.tags["kav.run_key"] for r in runs),
        "finished": sum(r.info.status == "FINISHED" for r in runs),
        "steps": sorted({len(client.get_metric_history(r.info.run_id, "loss")) for r in runs}),
        "kind": exp.tags.get("mlflow.experimentKind"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("schema", ["new", "older"])
def test_parallel_processes_open_one_store(tmp_path, schema):
    db = str(tmp_path / "store" / "mlflow.db")
    if schema == "older":
        os.makedirs(os.path.dirname(db))
        older_schema_store(db)
        with sqlite3.connect(db) as con:
            assert con.execute("select version_num from alembic_version").fetchone() == (
                "867495a8f9d4",)
    n = 4
    procs = start_children(f"sqlite:///{db}", n, tmp_path)
    outs = [p.communicate(timeout=300) for p in procs]
    failures = [err[-2000:] for p, (out, err) in zip(procs, outs) if p.returncode != 0]
    assert not failures, failures
    assert all(json.loads(out)["created"] for out, _ in outs)
    summary = store_summary(db)
    assert summary == {"runs": [f"proc-{i}" for i in range(n)], "finished": n, "steps": [5],
                       "kind": "custom_model_development"}
    assert os.path.exists(db + ".lock")


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> str:
    """A migrated, empty store made once; tests copy it (a migration costs seconds)."""
    db = str(tmp_path_factory.mktemp("template") / "mlflow.db")
    tracking.open_store(f"sqlite:///{db}")
    return db


def copied_store(template_db, tmp_path) -> str:
    shutil.copy(template_db, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path}/mlflow.db"


def test_create_run_finds_the_run_of_its_key(tmp_path, template_db):
    import mlflow

    uri = copied_store(template_db, tmp_path)
    exp = tracking.setup(uri, "keys")
    first, created = tracking.create_run(uri, exp, "abc123", run_name="r", tags={"x": 1})
    again, created_again = tracking.create_run(uri, exp, "abc123", run_name="r")
    other, _ = tracking.create_run(uri, exp, "def456")
    assert created and not created_again and again == first and other != first
    client = mlflow.MlflowClient(uri)
    run = client.get_run(first)
    assert run.data.tags["kav.run_key"] == "abc123" and run.data.tags["x"] == "1"
    assert run.info.run_name == "r"
    # The context tags of mlflow.start_run: the UI's "Created by" and "Source" columns.
    import getpass

    assert run.data.tags["mlflow.user"] == getpass.getuser()
    assert run.data.tags["mlflow.source.type"] == "LOCAL" and run.data.tags["mlflow.source.name"]
    # ... and in the provenance every run the project creates carries (studies' parent runs too).
    assert tracking.version_tags()["mlflow.user"] == getpass.getuser()
    client.delete_run(first)  # a deleted run is not found again: a new one is made
    fresh, created_fresh = tracking.create_run(uri, exp, "abc123")
    assert created_fresh and fresh != first
    assert len(client.search_runs([exp])) == 2


def test_setup_tags_existing_experiments_with_their_kind(tmp_path, template_db):
    import mlflow

    uri = copied_store(template_db, tmp_path)
    tracking.open_store(uri)
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("old", artifact_location=str(tmp_path / "a"))
    assert "mlflow.experimentKind" not in client.get_experiment(exp).tags
    assert tracking.setup(uri, "old") == exp
    assert client.get_experiment(exp).tags["mlflow.experimentKind"] == "custom_model_development"
    new = tracking.setup(uri, "new one")
    got = client.get_experiment(new)
    assert got.tags["mlflow.experimentKind"] == "custom_model_development"
    assert got.artifact_location == str(tmp_path / "artifacts" / "new_one")


# ---- failures: one line, fast -----------------------------------------------------------------

@contextlib.contextmanager
def readonly_mount(path):
    """``path`` as a read-only tmpfs (first filled by ``fill(path)``); skip when mounting is
    refused (not root, no CAP_SYS_ADMIN)."""
    os.makedirs(path, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to make a read-only location: {proc.stderr.strip()}")
    try:
        yield lambda: subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def open_store_in_child(uri: str, cwd) -> tuple[subprocess.CompletedProcess, float]:
    code = ("import sys\nfrom experiments import tracking\n"
            "try:\n    tracking.open_store(sys.argv[1])\n"
            "except tracking.TrackingUnavailableError as e:\n"
            "    print('error: ' + str(e), file=sys.stderr); sys.exit(2)\n")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code, uri], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=120)
    return proc, time.monotonic() - t0


def assert_one_line(proc, elapsed, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert elapsed < 10, elapsed


@pytest.mark.slow
def test_read_only_directory_fails_fast(tmp_path):
    ro = tmp_path / "ro"
    with readonly_mount(ro) as make_ro:
        make_ro()
        proc, elapsed = open_store_in_child(f"sqlite:///{ro}/mlflow.db", tmp_path)
    assert_one_line(proc, elapsed, str(ro), "read-only file system")


@contextlib.contextmanager
def readonly_bind(path):
    """The existing file ``path`` made read-only by a read-only bind mount of itself; skip when
    mounting is refused."""
    proc = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot bind-mount {path} read-only: {proc.stderr.strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.slow
def test_read_only_database_file_fails_fast(tmp_path, template_db):
    copied_store(template_db, tmp_path)  # a real store in a writable directory
    db = tmp_path / "mlflow.db"
    with readonly_bind(db):
        proc, elapsed = open_store_in_child(f"sqlite:///{db}", tmp_path)
    assert_one_line(proc, elapsed, str(db), "not writable (read-only file system)")


def bad_cases(tmp_path):
    (tmp_path / "dir.db").mkdir()
    (tmp_path / "text.db").write_text("this is not a database\n" * 10)
    return [
        (f"sqlite:///{tmp_path}/dir.db", ["is a directory", f"{tmp_path}/dir.db"]),
        (f"sqlite:///{tmp_path}/text.db", ["not an SQLite database", f"{tmp_path}/text.db"]),
        (f"file://{tmp_path}/mlruns", ["file store", "sqlite:///"]),
        (str(tmp_path / "mlruns"), ["file store", "sqlite:///"]),
        ("ftp://example.invalid/x", ["ftp:// is not supported", "sqlite:///"]),
        ("postgresql+psycopg://u:secret@127.0.0.1:1/db",
         ["cannot connect to tracking database", "u:***@127.0.0.1:1", "Connection refused"]),
        ("http://127.0.0.1:9", ["cannot reach the MLflow tracking server http://127.0.0.1:9"]),
    ]


def test_bad_stores_fail_in_process_with_one_line(tmp_path, monkeypatch):
    pytest.importorskip("psycopg", reason="the postgresql+psycopg:// case needs the driver")
    check_bad_stores(bad_cases(tmp_path))


def test_postgresql_without_its_driver_says_what_to_install(monkeypatch):
    for name in ("psycopg", "psycopg2"):
        monkeypatch.setitem(sys.modules, name, None)  # `import psycopg` raises ImportError
    check_bad_stores([
        ("postgresql://u:secret@127.0.0.1:1/db", ["pip install 'psycopg[binary]'", "u:***@"]),
        ("postgresql+psycopg://u@127.0.0.1:1/db", ["pip install 'psycopg[binary]'"]),
        ("postgresql+psycopg2://u@127.0.0.1:1/db",
         ["pip install 'psycopg[binary]'", "postgresql+psycopg://"]),
    ])


def check_bad_stores(cases):
    for uri, fragments in cases:
        t0 = time.monotonic()
        with pytest.raises(tracking.TrackingUnavailableError) as info:
            tracking.open_store(uri)
        elapsed = time.monotonic() - t0
        message = str(info.value)
        assert "\n" not in message and elapsed < 10, (uri, message, elapsed)
        for fragment in fragments:
            assert fragment in message, (uri, message)
        assert "secret" not in message


@pytest.mark.slow
def test_bad_store_in_a_fresh_process_is_one_line(tmp_path):
    """Without MLflow's engine retries (about 100 s for an unopenable SQLite file)."""
    (tmp_path / "text.db").write_text("not a database")
    proc, elapsed = open_store_in_child(f"sqlite:///{tmp_path}/text.db", tmp_path)
    assert_one_line(proc, elapsed, "not an SQLite database")


@pytest.mark.slow
def test_unwritable_artifact_directory_is_refused(tmp_path, template_db):
    import mlflow

    uri = copied_store(template_db, tmp_path)
    tracking.open_store(uri)
    ro = tmp_path / "artifacts-ro"
    with readonly_mount(ro) as make_ro:
        make_ro()
        mlflow.MlflowClient(uri).create_experiment("ro-artifacts", artifact_location=str(ro))
        with pytest.raises(tracking.TrackingUnavailableError, match="artifact directory .* not "
                           "writable .read-only file system"):
            tracking.setup(uri, "ro-artifacts")
