"""The ``kav`` command: one entry point for every experiment (``kav --help``).

``kav SUBCOMMAND ARGS...`` parses its own options (``-v``, ``--debug``, ``--version``), then
imports the subcommand's module and calls its ``main(argv)`` with the remaining arguments, so
``kav train --help`` answers as fast as ``python -m experiments.train --help`` (neither loads
TensorFlow before its arguments are parsed). ``python -m experiments.X`` keeps working.

Subcommands (module, relative to this package):

=========================  ================================================================
``train``                  ``train``: one training run, logged to MLflow
``compare``                ``compare``: every optimizer on one workload over seeds
``sweep``                  ``sweep``: a learning-rate sweep from a TOML config (by name or path)
``reproduce reddi``        ``reddi_synthetic``: Reddi et al. 2018, section 5
``reproduce kingma-ba``    ``kingma_ba``: Kingma & Ba 2015, section 6
``server``                 ``server``: an MLflow tracking server on PostgreSQL, for a team
``ui``                     the MLflow UI on the project's tracking store (this module)
``datasets``               ``datasets_cli``: list, prepare or check the TFDS datasets
``sync``                   ``sync``: deliver runs spooled while the tracking server was down
=========================  ================================================================

Output is quiet by default (TensorFlow's C++ log, absl/TFDS and MLflow info lines off);
``-v`` shows them. Errors are one ``error: ...`` line with exit status 2; ``--debug`` shows the
traceback instead.

The package name is not written anywhere in this module (it is ``__package__``), so the package
can be renamed without touching the dispatch.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.abc
import importlib.util
import logging
import os
import re
import shlex
import sys
import tempfile

PACKAGE = __package__ or "experiments"  # "kav_experiments" when installed; also under `python -m`
PROG = "kav"

# subcommand -> (module relative to PACKAGE, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "train one (workload, optimizer) pair, logged as one MLflow run"),
    "compare": ("compare", "compare optimizers on one workload over seeds (the main job)"),
    "sweep": ("sweep", "learning-rate sweep from a TOML config (a built-in name or a path)"),
    "server": ("server", "start an MLflow tracking server backed by PostgreSQL (for a team)"),
    "datasets": ("datasets_cli", "list, prepare or check the TFDS datasets"),
    "sync": ("sync", "deliver runs spooled while the tracking server was unreachable"),
}
REPRODUCTIONS: dict[str, tuple[str, str]] = {
    "reddi": ("reddi_synthetic", "Reddi et al. 2018, section 5: Adam vs AMSGrad, synthetic"),
    "kingma-ba": ("kingma_ba", "Kingma & Ba 2015, section 6: logistic regression, MLP, CNN"),
}
# Subcommands that log runs to a tracking store: the UI hint is printed after them.
LOGGING_COMMANDS = {"train", "compare", "sweep", "reddi", "kingma-ba"}

DEFAULT_UI_PORT = 5000
_hinted: set[str] = set()


def version() -> str:
    """The installed distribution's version (``keras-adam-variants``), without importing Keras."""
    from importlib import metadata

    try:
        return metadata.version("keras-adam-variants")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


# ---- the MLflow UI ----------------------------------------------------------------------------

def _default_tracking_uri() -> str:
    from importlib import import_module

    return import_module(f"{PACKAGE}.tracking").default_tracking_uri()


def ui_hint(uri: str | None = None) -> str:
    """The exact shell command that opens the MLflow UI on the store ``uri`` (None: the default).

    ``kav ui`` when that is what ``kav ui`` run here would open (the current directory's
    ``mlruns/mlflow.db``, with ``MLFLOW_TRACKING_URI`` unset or equal to it), ``kav ui
    --tracking-uri URI`` for another local store, and the server's address for a tracking server (its UI is
    already running there).
    """
    uri = uri or _default_tracking_uri()
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser (the tracking server serves the MLflow UI)"
    here = "sqlite:///" + os.path.join(os.path.abspath(os.getcwd()), "mlruns", "mlflow.db")
    if uri == here and os.environ.get("MLFLOW_TRACKING_URI", uri) == uri:
        return f"{PROG} ui    (from {os.getcwd()})"
    return f"{PROG} ui --tracking-uri {shlex.quote(uri)}"


def print_ui_hint(uri: str | None = None, file=None) -> None:
    """Print ``MLflow UI: <ui_hint(uri)>`` once per process and store (later calls: nothing).

    Entry modules call it at the end of ``main``; ``kav`` calls it too after logging commands,
    and the once-only rule keeps it to one line.
    """
    from importlib import import_module

    uri = import_module(f"{PACKAGE}.tracking").resolve_uri(uri)  # None: the default store
    if uri in _hinted:
        return
    _hinted.add(uri)
    print(f"MLflow UI: {ui_hint(uri)}", file=file or sys.stdout, flush=True)


def print_ui_hint_after(argv: list[str] | None, status: int) -> None:
    """End of a command that logs runs (``argv``: its arguments, None for ``sys.argv[1:]``;
    ``status``: its exit status): :func:`print_ui_hint` for the store its ``--tracking-uri`` names
    (else the default) when it logged runs -- status 0 (every run finished) or 1 (a run failed;
    the store has it too) -- and not after ``--help``. Entry modules call it last in ``main``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if status in (0, 1) and "-h" not in argv and "--help" not in argv:
        print_ui_hint(_tracking_uri_in(argv))


def ui_command(uri: str, host: str = "127.0.0.1", port: int = DEFAULT_UI_PORT) -> list[str]:
    """The ``mlflow ui`` argv that serves the UI for the local store ``uri``."""
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
            "--host", host, "--port", str(port)]


# MLflow 3.17's UI shows every experiment in its GenAI view (traces) unless the page's URL says
# workflowType=machine_learning or the user flips the sidebar's "GenAI | Model training" switch (the
# experiment's mlflow.experimentKind tag is not consulted while that switch exists): seen in
# screenshots (benchmarks/ui_screenshots.py) and in the UI's code (the "mlflow.workflowType" state).
TRAINING_VIEW = "workflowType=machine_learning"


def experiment_links(uri: str, base_url: str) -> list[tuple[str, str]]:
    """``[(experiment name, URL of its training-runs table)]`` for each active experiment of the
    local SQLite store ``uri`` that has runs, by name; [] for other stores or an unreadable file.
    Read with :mod:`sqlite3` (read-only), so ``kav ui`` prints them without importing MLflow."""
    import sqlite3

    if not uri.startswith("sqlite:///"):
        return []
    db = os.path.abspath(uri[len("sqlite:///"):])
    if not os.path.isfile(db):
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
            rows = c.execute(
                "SELECT e.experiment_id, e.name FROM experiments e WHERE e.lifecycle_stage = "
                "'active' AND EXISTS (SELECT 1 FROM runs r WHERE r.experiment_id = "
                "e.experiment_id AND r.lifecycle_stage = 'active') ORDER BY e.name").fetchall()
    except sqlite3.Error:
        return []
    return [(name, f"{base_url}/#/experiments/{eid}/runs?{TRAINING_VIEW}") for eid, name in rows]


def ui_main(argv: list[str]) -> int:
    """``kav ui``: run ``mlflow ui`` on the project's store until Ctrl-C."""
    p = argparse.ArgumentParser(
        prog=f"{PROG} ui",
        description="Open the MLflow UI on the store every kav command logs to: --tracking-uri, "
                    "else $MLFLOW_TRACKING_URI, else "
                    "sqlite:///<current directory>/mlruns/mlflow.db (artifacts in "
                    "mlruns/artifacts/).")
    p.add_argument("--tracking-uri", default=None, help="the store (default: as above)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_UI_PORT,
                   help=f"port (default {DEFAULT_UI_PORT})")
    p.add_argument("--print-command", action="store_true",
                   help="print the mlflow command instead of running it")
    args = p.parse_args(argv)
    uri = args.tracking_uri or _default_tracking_uri()
    if uri.startswith(("http://", "https://")):
        print(f"the store is the tracking server {uri}: open it in a browser, its UI is there")
        return 0
    command = ui_command(uri, args.host, args.port)
    if args.print_command:
        print(shlex.join(command))
        return 0
    import subprocess

    if uri.startswith("sqlite:///") and not os.path.exists(uri[len("sqlite:///"):]):
        print(f"note: no runs at {uri} yet (run a kav command in this directory first, or pass "
              "--tracking-uri / set MLFLOW_TRACKING_URI)", flush=True)
    base = f"http://{args.host}:{args.port}"
    print(f"MLflow UI on {uri}: {base}/#/experiments?{TRAINING_VIEW}  (Ctrl-C stops it)")
    links = experiment_links(uri, base)
    if links:
        print("training runs of each experiment (MLflow opens experiments in its GenAI view "
              "otherwise; the sidebar's 'Model training' switch does the same):")
        for name, url in links:
            print(f"  {name}: {url}")
    sys.stdout.flush()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0


# ---- quiet logs -------------------------------------------------------------------------------

# Lines TensorFlow's C++ runtime writes straight to file descriptor 2 while it is imported, whatever
# TF_CPP_MIN_LOG_LEVEL says (TF 2.21 logs through absl before absl's log is initialised): the
# "before absl::InitializeLog()" notice and INFO lines such as the oneDNN banner, twice a process.
_IMPORT_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to "
    r"STDERR|I\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] )")


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern = _IMPORT_NOISE):
    """Send file descriptor 2 to a temporary file for the block, then write back every line that
    does not match ``noise`` (everything, if the block raised)."""
    sys.stderr.flush()
    saved = os.dup(2)
    failed = True
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            kept = lines if failed else [line for line in lines if not noise.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietImport(importlib.abc.MetaPathFinder):
    """Imports the top-level module ``name`` (on first import only) inside
    :func:`filtered_stderr`."""

    def __init__(self, name: str):
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def quiet_exec_module(module):
            with filtered_stderr():
                exec_module(module)

        spec.loader.exec_module = quiet_exec_module
        return spec


def quiet_tensorflow_import() -> None:
    """Hide the banner TensorFlow prints when it is imported (see ``_IMPORT_NOISE``); call before
    anything imports it. Other stderr output of the import is kept; nothing changes once
    TensorFlow is imported."""
    if "tensorflow" not in sys.modules and not any(
            isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport("tensorflow"))


def configure_logging(verbose: bool) -> None:
    """Quiet by default: TensorFlow's C++ log, absl (TFDS) and MLflow at WARNING; ``verbose``
    shows their info lines. Environment variables already set by the user win."""
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        level = logging.INFO
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # oneDNN banner, CUDA probing
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        quiet_tensorflow_import()
        level = logging.WARNING
    for name in ("absl", "tensorflow", "tensorflow_datasets", "mlflow", "alembic", "urllib3"):
        logging.getLogger(name).setLevel(level)


# ---- the command line -------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="keras-adam-variants experiments: train, compare and sweep the optimizers on "
                    "TFDS datasets, logged to MLflow. `kav SUBCOMMAND --help` for each.",
        epilog="Runs go to --tracking-uri, else $MLFLOW_TRACKING_URI, else "
               "sqlite:///<current directory>/mlruns/mlflow.db; `kav ui` opens the MLflow UI "
               "there.")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show library logs (TensorFlow, TFDS, MLflow)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = p.add_subparsers(dest="command", metavar="SUBCOMMAND")
    for name, (_, text) in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    rep = sub.add_parser("reproduce", help="paper reproductions: "
                         + ", ".join(REPRODUCTIONS), add_help=False)
    del rep
    sub.add_parser("ui", help="the MLflow UI on the project's store (no flags needed)",
                   add_help=False)
    return p


def _reproduce_help() -> str:
    lines = [f"usage: {PROG} reproduce {{{','.join(REPRODUCTIONS)}}} [ARGS...]", "",
             "paper reproductions:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in REPRODUCTIONS.items()]
    return "\n".join(lines)


def _tracking_uri_in(argv: list[str]) -> str | None:
    """The value of ``--tracking-uri`` in ``argv``, if any (``--tracking-uri X`` or ``=X``)."""
    for i, arg in enumerate(argv):
        if arg == "--tracking-uri" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--tracking-uri="):
            return arg.split("=", 1)[1]
    return None


def _load_main(module: str):
    """``PACKAGE.module.main``; ModuleNotFoundError only when that module itself is missing."""
    full = f"{PACKAGE}.{module}"
    try:
        mod = importlib.import_module(full)
    except ModuleNotFoundError as err:
        if err.name == full:
            return None
        raise
    return mod.main


def _exit_code(result) -> int:
    """Entry mains return an int status, or a result object / None for success."""
    if isinstance(result, bool):
        return 0
    if isinstance(result, int):
        return result
    return 0


def dispatch(command: str, argv: list[str]) -> int:
    """Run ``kav command argv...``; the exit status."""
    if command == "ui":
        return ui_main(argv)
    if command == "reproduce":
        if not argv or argv[0] in ("-h", "--help"):
            print(_reproduce_help())
            return 0 if argv else 2
        name, argv = argv[0], argv[1:]
        if name not in REPRODUCTIONS:
            print(f"error: unknown reproduction {name!r}: expected one of "
                  f"{', '.join(REPRODUCTIONS)} (`{PROG} reproduce --help`)", file=sys.stderr)
            return 2
        module, command = REPRODUCTIONS[name][0], name
    else:
        module = COMMANDS[command][0]
    main = _load_main(module)
    if main is None:
        print(f"error: `{PROG} {command}` is not available in this version "
              f"(no module {PACKAGE}.{module})", file=sys.stderr)
        return 2
    status = _exit_code(main(argv))
    if command in LOGGING_COMMANDS:
        print_ui_hint_after(argv, status)
    return status


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kav`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Top-level options come before the subcommand; everything after it belongs to the module.
    split = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
    args = parser.parse_args(argv[:split + 1])
    if args.command is None:
        parser.print_help()
        return 2
    configure_logging(args.verbose)
    try:
        return dispatch(args.command, argv[split + 1:])
    except SystemExit as exit_:
        code = exit_.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)  # SystemExit("error: ...") from an entry module
        return 2
    except BaseException as err:  # noqa: BLE001 -- one line, as every entry module (errors.py)
        from .errors import report

        return report(err, debug=args.debug)

if __name__ == "__main__":
    sys.exit(main())
