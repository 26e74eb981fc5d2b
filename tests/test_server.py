"""The team tracking server (``experiments.server``) on a real, throwaway PostgreSQL.

One PostgreSQL cluster and one ``kav server`` on it for the module; a training run and a compare
log to the server over HTTP, and every run and metric is then read back from the DATABASE
(the ``runs`` / ``metrics`` tables), the artifacts from the server's artifact directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests import _postgres
from tests._experiment_helpers import digits_data_dir, env  # noqa: F401

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_postgres.unavailable_reason() is not None,
                       reason=str(_postgres.unavailable_reason())),
]
psycopg = pytest.importorskip("psycopg", reason="pip install 'keras-adam-variants[server]'")

PYTHON = sys.executable
DB_USER, DB_PASSWORD, DB_NAME = "mlflow", "s3cret pass", "mlflow_team"


def server(*args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "experiments.server", *map(str, args)], env=env(),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def postgres():
    with _postgres.postgres_cluster() as (port, superuser_uri):
        yield port, superuser_uri


@pytest.fixture(scope="module")
def backend_uri(postgres):
    port, superuser = postgres
    uri = f"postgresql+psycopg://{DB_USER}:s3cret%20pass@127.0.0.1:{port}/{DB_NAME}"
    proc = server("--init-db", "--superuser-uri", superuser, "--backend-store-uri", uri, "--check")
    assert proc.returncode == 0, proc.stderr
    assert "created role mlflow" in proc.stdout and f"created database {DB_NAME}" in proc.stdout
    return uri


@pytest.fixture(scope="module")
def tracking_server(backend_uri, tmp_path_factory):
    """``python -m experiments.server`` on the database, in its own process group; yields
    ``(uri, artifacts_dir)``."""
    root = tmp_path_factory.mktemp("server")
    artifacts = root / "artifacts"
    port = _postgres.free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [PYTHON, "-m", "experiments.server", "--backend-store-uri", backend_uri,
         "--artifacts-destination", str(artifacts), "--port", str(port), "--workers", "1"],
        cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env(), start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (root / "server.log").read_text()[-3000:]
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(uri + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            assert time.monotonic() < deadline, (root / "server.log").read_text()[-3000:]
            time.sleep(0.5)
        yield uri, artifacts
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()


def query(backend_uri, sql, *params):
    from experiments.server import PostgresURI

    with psycopg.connect(**PostgresURI(backend_uri).conninfo()) as conn:
        return conn.execute(sql, params).fetchall()


# ---- fast failures --------------------------------------------------------------------------

@pytest.mark.parametrize("uri, expected", [
    ("mysql://u@127.0.0.1/db", "is not a PostgreSQL URI"),
    ("postgresql+psycopg://u@127.0.0.1:5432/", "names no database"),
    ("postgresql+psycopg://u@127.0.0.1:99999/db", "invalid port"),
])
def test_a_bad_database_uri_fails_in_one_line(uri, expected):
    start = time.monotonic()
    proc = server("--backend-store-uri", uri)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and expected in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert time.monotonic() - start < 10


def test_a_database_that_is_down_fails_in_seconds():
    port = _postgres.free_port()  # nothing listens there
    start = time.monotonic()
    proc = server("--backend-store-uri", f"postgresql+psycopg://u:p@127.0.0.1:{port}/db")
    assert proc.returncode == 2, proc.stdout
    assert proc.stderr.startswith("error: cannot use the PostgreSQL database")
    assert proc.stderr.count("\n") == 1 and "--init-db" in proc.stderr
    assert time.monotonic() - start < 15


def test_a_missing_database_and_a_wrong_password_fail_in_one_line(postgres, backend_uri):
    port, _ = postgres
    for uri, expected in [
        (f"postgresql+psycopg://{DB_USER}@127.0.0.1:{port}/nodb", 'database "nodb" does not exist'),
        (f"postgresql+psycopg://nobody@127.0.0.1:{port}/{DB_NAME}", 'role "nobody" does not exist'),
    ]:
        proc = server("--backend-store-uri", uri, "--check")
        assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1


def test_init_db_is_idempotent_and_sets_the_password(postgres, backend_uri):
    _, superuser = postgres
    proc = server("--init-db", "--superuser-uri", superuser, "--backend-store-uri", backend_uri,
                  "--check")
    assert proc.returncode == 0, proc.stderr
    assert "already exist" in proc.stdout
    owner = query(superuser,
                  "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", DB_NAME)
    assert owner == [(DB_USER,)]
    has_password = query(superuser, "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = %s",
                         DB_USER)
    assert has_password == [(True,)]


# ---- a real server, real runs ---------------------------------------------------------------

def test_runs_and_metrics_land_in_postgresql(tracking_server, backend_uri, digits_data_dir,
                                             tmp_path):
    uri, artifacts = tracking_server
    train = subprocess.run(
        [PYTHON, "-m", "experiments.train", "--optimizer", "amsgrad", "--workload", "digits_mlp",
         "--epochs", "2", "--log-every", "5", "--tracking-uri", uri, "--experiment", "team",
         "--run-name", "team-train", "--data-dir", digits_data_dir, "--no-log-model"],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-3000:]
    compare = subprocess.run(
        [PYTHON, "-m", "experiments.compare", "--optimizers", "adam,rmsprop", "--seeds", "1",
         "--epochs", "1", "--tracking-uri", uri, "--experiment", "team-compare",
         "--data-dir", digits_data_dir, "--workers", "2"],
        cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=300)
    assert compare.returncode == 0, compare.stderr[-3000:]
    # Nothing went to a local store: ./mlruns holds only the runs' local side (checkpoints and
    # spool, as for any tracking server), emptied once everything was delivered.
    local = tmp_path / "mlruns"
    assert not (tmp_path / "mlflow.db").exists() and not (local / "mlflow.db").exists()
    assert [p for p in local.rglob("*") if p.is_file()] == []

    runs = query(backend_uri, """
        SELECT r.run_uuid, r.name, r.status, e.name FROM runs r JOIN experiments e
        USING (experiment_id) WHERE e.name IN ('team', 'team-compare')""")
    # The training run, compare's parent and its 2 children; all FINISHED.
    assert sorted(exp for *_, exp in runs) == ["team", "team-compare", "team-compare",
                                               "team-compare"], runs
    assert {status for _, _, status, _ in runs} == {"FINISHED"}, runs
    parents = query(backend_uri, """
        SELECT t.value FROM tags t JOIN runs r USING (run_uuid)
        WHERE t.key = 'mlflow.parentRunId' AND r.status = 'FINISHED'""")
    assert len(parents) == 2 and len({v for (v,) in parents}) == 1, parents
    assert parents[0][0] in {run_id for run_id, *_ in runs}

    # Every epoch of every training run is in the metrics table, once.
    rows = query(backend_uri, """
        SELECT m.run_uuid, m.key, m.step, count(*) FROM metrics m
        WHERE m.key IN ('val_loss', 'val_accuracy', 'loss') GROUP BY m.run_uuid, m.key, m.step""")
    steps: dict[str, dict[str, list]] = {}
    for run_id, key, step, count in rows:
        assert count == 1, (run_id, key, step, count)
        steps.setdefault(run_id, {}).setdefault(key, []).append(step)
    epochs = {run_id: (2 if exp == "team" else 1) for run_id, _, _, exp in runs
              if run_id != parents[0][0]}
    assert set(steps) == set(epochs), (steps, epochs)  # the parent logs no epochs
    for run_id, n in epochs.items():
        assert {k: len(v) for k, v in steps[run_id].items()} == {
            "loss": n, "val_loss": n, "val_accuracy": n}, (run_id, steps[run_id])
    values = query(backend_uri, """
        SELECT m.value FROM metrics m JOIN runs r USING (run_uuid)
        WHERE r.name = 'team-train' AND m.key = 'val_accuracy'""")
    assert all(0.0 <= v <= 1.0 for (v,) in values)

    # Artifacts went through the server into its artifact directory.
    logged = {p.name for p in artifacts.rglob("*") if p.is_file()}
    assert "config.json" in logged, sorted(logged)[:20]
