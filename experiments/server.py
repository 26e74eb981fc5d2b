"""A team tracking server: ``mlflow server`` backed by PostgreSQL, artifacts served by it.

``kav server`` (or ``python -m experiments.server``) checks the database first -- a bad URI or a
database that is down fails within seconds with one ``error:`` line and exit status 2, instead of
MLflow's retries and traceback -- then replaces itself with::

    MLFLOW_BACKEND_STORE_URI=postgresql+psycopg://... \
    mlflow server --serve-artifacts --artifacts-destination DEST --host HOST --port PORT

so its process id, signals and exit status are the server's. Clients log with
``--tracking-uri http://HOST:PORT`` (or ``MLFLOW_TRACKING_URI``); run data goes to PostgreSQL
and artifacts (models, plots) through the server to ``DEST``: a directory, or any artifact store
MLflow supports (``s3://bucket/path``, ``gs://``, ``wasbs://``, ...; their client libraries must be
installed where the server runs).

``--init-db`` first creates the role and the database named in ``--backend-store-uri`` on a
PostgreSQL you administer, connecting with ``--superuser-uri`` (idempotent: existing ones are
kept; a password in the backend URI is set on the role).

The driver is psycopg 3 (``pip install "keras-adam-variants[server]"``): SQLAlchemy calls it
``postgresql+psycopg``; a plain ``postgresql://`` URI is read as that too (SQLAlchemy's default for
it, psycopg2, is not a dependency).
"""

from __future__ import annotations

import argparse
import os
import sys
from urllib.parse import unquote, urlsplit

DEFAULT_BACKEND_URI = "postgresql+psycopg://mlflow:mlflow@127.0.0.1:5432/mlflow"
DEFAULT_SUPERUSER_URI = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_PORT = 5000
CONNECT_TIMEOUT_S = 5
SCHEMES = ("postgresql", "postgresql+psycopg", "postgres")


class ServerError(RuntimeError):
    """Bad input or environment for the server; the message is the one line shown."""


class PostgresURI:
    """The parts of a ``postgresql[+psycopg]://USER[:PASSWORD]@HOST[:PORT]/DATABASE`` URI."""

    def __init__(self, uri: str, what: str = "--backend-store-uri"):
        parts = urlsplit(uri)
        if parts.scheme not in SCHEMES:
            raise ServerError(
                f"{what} {_redact(uri)!r} is not a PostgreSQL URI: expected "
                "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE")
        database = unquote(parts.path.lstrip("/"))
        if not database or "/" in database:
            raise ServerError(f"{what} {_redact(uri)!r} names no database: expected "
                              "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE")
        try:
            self.port = parts.port or 5432
        except ValueError:
            raise ServerError(f"{what} {_redact(uri)!r} has an invalid port") from None
        self.user = unquote(parts.username or "") or None
        self.password = unquote(parts.password) if parts.password is not None else None
        self.host = parts.hostname or None  # None: the local Unix socket
        self.database = database
        self.query = parts.query
        self.uri = uri

    def sqlalchemy(self) -> str:
        """The URI with SQLAlchemy's psycopg 3 dialect (what ``mlflow server`` is given)."""
        scheme, rest = self.uri.split("://", 1)
        return "postgresql+psycopg://" + rest if scheme != "postgresql+psycopg" else self.uri

    def conninfo(self, database: str | None = None) -> dict:
        """Keyword arguments for ``psycopg.connect``."""
        kwargs = {"dbname": database or self.database, "port": self.port,
                  "connect_timeout": CONNECT_TIMEOUT_S}
        for key in ("user", "password", "host"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        return kwargs

    def where(self) -> str:
        return f"{self.host or 'local socket'}:{self.port}/{self.database} as {self.user or 'you'}"


def _redact(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    return uri.replace(f":{parts.password}@", ":***@", 1)


def _psycopg():
    try:
        import psycopg
    except ImportError:
        raise ServerError("the PostgreSQL driver psycopg 3 is not installed: "
                          "pip install \"keras-adam-variants[server]\" (or: pip install "
                          "\"psycopg[binary]\")") from None
    return psycopg


def _first_line(err: Exception) -> str:
    """The error's message on one line, ending with one full stop or question mark."""
    text = str(err).strip() or type(err).__name__
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if text.endswith(("?", ".")) else text + "."


def check_database(db: PostgresURI) -> None:
    """Connect once (``connect_timeout`` seconds at most) or raise :class:`ServerError`."""
    psycopg = _psycopg()
    try:
        with psycopg.connect(**db.conninfo()) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as err:
        raise ServerError(
            f"cannot use the PostgreSQL database {db.where()}: {_first_line(err)} Check that "
            "PostgreSQL runs there and the URI is right; create the role and database with "
            "`kav server --init-db --superuser-uri postgresql://postgres@HOST:PORT/postgres`."
        ) from None


def init_db(db: PostgresURI, superuser_uri: str) -> list[str]:
    """Create ``db``'s role (with its password, if any) and database owned by it, connecting as
    the superuser URI; return what was done (empty when both existed already)."""
    psycopg = _psycopg()
    from psycopg import sql

    admin = PostgresURI(superuser_uri, what="--superuser-uri")
    if db.user is None:
        raise ServerError("--backend-store-uri names no user: --init-db needs one to create "
                          "(postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE)")
    done = []
    try:
        with psycopg.connect(**admin.conninfo(), autocommit=True) as conn:
            role = sql.Identifier(db.user)
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                  (db.user,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
                done.append(f"created role {db.user}")
            if db.password is not None:
                conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                    role, sql.Literal(db.password)))
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (db.database,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(db.database), role))
                done.append(f"created database {db.database} owned by {db.user}")
    except psycopg.Error as err:
        raise ServerError(f"--init-db: cannot create the role and database as "
                          f"{admin.where()}: {_first_line(err)}") from None
    return done


def _artifacts_destination(dest: str) -> str:
    """A local path made absolute (the server may be started from anywhere); URIs unchanged."""
    if "://" in dest or dest.startswith("mlflow-artifacts:"):
        return dest
    return os.path.abspath(dest)


def server_command(args: argparse.Namespace, db: PostgresURI) -> list[str]:
    """The ``mlflow server`` argv for the parsed arguments. The database URI is not in it (it
    may hold a password, and argv is public): it goes in ``MLFLOW_BACKEND_STORE_URI``."""
    cmd = [sys.executable, "-m", "mlflow", "server", "--serve-artifacts", "--artifacts-destination",
           _artifacts_destination(args.artifacts_destination),
           "--host", args.host, "--port", str(args.port)]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    return cmd


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kav server",
        description="Start an MLflow tracking server for a team: runs in PostgreSQL, artifacts "
                    "served by the server. Clients use --tracking-uri http://HOST:PORT.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 "
                        "for every interface -- the server has no authentication)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    p.add_argument("--backend-store-uri",
                   default=os.environ.get("MLFLOW_BACKEND_STORE_URI", DEFAULT_BACKEND_URI),
                   help="PostgreSQL database of runs, postgresql+psycopg://USER:PASSWORD@HOST:"
                        f"PORT/DATABASE (default: $MLFLOW_BACKEND_STORE_URI, else "
                        f"{_redact(DEFAULT_BACKEND_URI)})")
    p.add_argument("--artifacts-destination", default="mlartifacts",
                   help="where the server stores artifacts: a directory (default ./mlartifacts) "
                        "or an artifact store URI (s3://..., gs://..., ...)")
    p.add_argument("--workers", type=int, default=None,
                   help="server worker processes (default: MLflow's)")
    p.add_argument("--init-db", action="store_true",
                   help="first create the role and database of --backend-store-uri (if missing)")
    p.add_argument("--superuser-uri", default=DEFAULT_SUPERUSER_URI,
                   help="a PostgreSQL superuser, for --init-db (default %(default)s)")
    p.add_argument("--check", action="store_true",
                   help="check the database (after --init-db, if given) and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not 0 < args.port < 65536:
            raise ServerError(f"--port {args.port} is not a port number (1-65535)")
        db = PostgresURI(args.backend_store_uri)
        if args.init_db:
            for line in init_db(db, args.superuser_uri) or ["role and database already exist"]:
                print(f"init-db: {line}", flush=True)
        check_database(db)
    except ServerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.check:
        print(f"database OK: {db.where()}")
        return 0
    command = server_command(args, db)
    url = f"http://{args.host}:{args.port}"
    print(f"MLflow tracking server on {url} (runs in PostgreSQL {db.where()}, artifacts in "
          f"{command[command.index('--artifacts-destination') + 1]}); clients: "
          f"--tracking-uri {url} or MLFLOW_TRACKING_URI={url}", flush=True)
    env = dict(os.environ)
    env["MLFLOW_BACKEND_STORE_URI"] = db.sqlalchemy()
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # GenAI jobs: not used here
    os.execve(sys.executable, command, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
