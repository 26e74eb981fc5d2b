"""The ``kav`` command (``experiments.cli``): fast help, dispatch, one-line errors, quiet output,
``kav ui`` on the one store every command uses, and the README's Python snippets run as written
in a directory where ``kav train`` logged a run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest

from experiments import cli
from experiments.errors import UserError
from tests._experiment_helpers import REPO, digits_data_dir, env, free_port, serving  # noqa: F401

PYTHON = sys.executable
HEAVY = ("tensorflow", "keras", "mlflow", "tensorflow_datasets")


def kav(*args, cwd=None, timeout=300, **extra_env) -> subprocess.CompletedProcess:
    """``kav ARGS`` as a user runs it (the console script's code, ``experiments.cli:main``)."""
    return subprocess.run([PYTHON, "-m", "experiments.cli", *map(str, args)], cwd=cwd,
                          env=env(**extra_env), capture_output=True, text=True, timeout=timeout)


def imported_after(code: str) -> set[str]:
    """Which of HEAVY a fresh interpreter has imported after running ``code``."""
    probe = (f"import contextlib, io, sys\nwith contextlib.redirect_stdout(io.StringIO()):\n"
             + "".join(f"    {line}\n" for line in code.splitlines())
             + f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([PYTHON, "-c", probe], env=env(), capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("HEAVY:"), out.stdout
    return {m for m in line[len("HEAVY:"):].split(",") if m}


# ---- fast help and parsing -------------------------------------------------------------------

def test_kav_help_is_fast_and_lists_every_subcommand():
    start = time.monotonic()
    proc = kav("--help")
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    for sub in ("train", "compare", "sweep", "reproduce", "server", "ui", "datasets", "sync"):
        assert re.search(rf"^\s+{sub}\s", proc.stdout, re.M), (sub, proc.stdout)
    assert elapsed < 3.0, f"kav --help took {elapsed:.2f} s"  # ~0.1 s on a quiet machine
    assert imported_after("from experiments import cli\n"
                          "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass") == set()


def test_kav_version():
    proc = kav("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("kav ")


ENTRY_MODULES = ["compare", "sweep", "kingma_ba", "reddi_synthetic", "server", "datasets_cli",
                 "train"]


@pytest.mark.parametrize("module", ENTRY_MODULES)
def test_entry_modules_parse_arguments_without_heavy_imports(module):
    loaded = imported_after(
        f"from experiments import {module} as m\n"
        "p = getattr(m, 'build_parser', None) or getattr(m, 'make_parser')\n"
        "try:\n    p().parse_args(['--help'])\nexcept SystemExit:\n    pass")
    assert loaded == set(), f"experiments.{module} imports {loaded} before parsing"


@pytest.mark.parametrize("argv", [["server", "--help"], ["datasets", "--help"], ["ui", "--help"],
                                  ["reproduce", "--help"], ["train", "--help"]])
def test_subcommand_help_is_fast(argv):
    start = time.monotonic()
    proc = kav(*argv)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: kav")
    assert time.monotonic() - start < 3.0


@pytest.mark.parametrize("argv, expected", [
    (["reproduce", "adam-paper"], "unknown reproduction 'adam-paper'"),
    (["nosuch"], "invalid choice: 'nosuch'"),
    (["server", "--backend-store-uri", "mysql://x/y"], "is not a PostgreSQL URI"),
    (["train", "--optimizer", "adamz"], "unknown optimizer 'adamz'"),
    (["compare", "--optimizers", "adam,amsgrd"], "(did you mean 'amsgrad'?)"),
])
def test_bad_input_is_one_error_line_and_status_2(argv, expected):
    start = time.monotonic()
    proc = kav(*argv)
    elapsed = time.monotonic() - start
    assert elapsed < 3.0, f"kav {' '.join(argv)} took {elapsed:.1f} s"  # no Keras import: ~0.2 s
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(("error: ", "kav: error: ")) and expected in last, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture
def no_logging_setup(monkeypatch):
    """In-process ``cli.main`` calls: leave this test process's logging and environment alone."""
    monkeypatch.setattr(cli, "configure_logging", lambda verbose: None)


def test_a_crash_is_one_line_and_debug_shows_the_traceback(monkeypatch, capsys, no_logging_setup):
    def boom(argv):
        raise RuntimeError("the disk is on fire")

    def bad_input(argv):
        raise UserError("no such thing: --x y; pass an existing one")

    monkeypatch.setattr(cli, "_load_main", lambda module: boom)
    assert cli.main(["train"]) == 1  # a bug, not the user's error: status 1, as every entry module
    err = capsys.readouterr().err
    assert err == ("error: unexpected RuntimeError: the disk is on fire -- this is a bug; rerun "
                   "with --debug and report the traceback\n")
    assert cli.main(["--debug", "train"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "on fire" in err and err.count("\nerror: ") == 1
    monkeypatch.setattr(cli, "_load_main", lambda module: bad_input)
    assert cli.main(["train"]) == 2
    assert capsys.readouterr().err == "error: no such thing: --x y; pass an existing one\n"


def test_dispatch_passes_arguments_and_exit_status(monkeypatch, capsys, tmp_path,
                                                   no_logging_setup):
    seen = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(cli, "_load_main", lambda module: lambda argv: seen.append(
        (module, argv)) or 0)
    monkeypatch.setattr(cli, "_hinted", set())
    assert cli.main(["-v", "reproduce", "kingma-ba", "--section", "6.1"]) == 0
    assert seen == [("kingma_ba", ["--section", "6.1"])]
    # A logging command ends with the command that opens the UI on its store.
    assert capsys.readouterr().out == f"MLflow UI: kav ui    (from {tmp_path})\n"
    assert cli.main(["train", "--tracking-uri", "sqlite:////elsewhere/runs.db"]) == 0
    assert capsys.readouterr().out == "MLflow UI: kav ui --tracking-uri sqlite:////elsewhere/runs.db\n"
    monkeypatch.setattr(cli, "_load_main", lambda module: lambda argv: 3)
    assert cli.main(["compare"]) == 3


@pytest.mark.parametrize("module", ["compare", "sweep", "kingma_ba"])
def test_python_m_entry_modules_end_with_the_ui_hint(module, monkeypatch, capsys, tmp_path):
    """``python -m experiments.X`` prints, last, the command that opens the UI on its store
    (cli.print_ui_hint_after), also after a failed run (exit 1), not after bad input (2)."""
    import importlib

    mod = importlib.import_module(f"experiments.{module}")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(cli, "_hinted", set())
    monkeypatch.setattr(mod, "run_cli", lambda argv: None)
    assert mod.main(["--tracking-uri", "sqlite:////elsewhere/runs.db"]) == 0
    assert capsys.readouterr().out == "MLflow UI: kav ui --tracking-uri sqlite:////elsewhere/runs.db\n"
    failed = type("Result", (), {"failures": ["a run"]})()
    monkeypatch.setattr(mod, "run_cli", lambda argv: failed)
    assert mod.main([]) == 1
    assert capsys.readouterr().out == f"MLflow UI: kav ui    (from {tmp_path})\n"

    def bad_input(argv):
        raise SystemExit("error: no such workload")

    monkeypatch.setattr(cli, "_hinted", set())
    monkeypatch.setattr(mod, "run_cli", bad_input)
    assert mod.main([]) == 2
    assert "MLflow UI" not in capsys.readouterr().out
    monkeypatch.setattr(mod, "run_cli", lambda argv: None)
    assert mod.main(["--help"]) == 0
    assert capsys.readouterr().out == ""


def test_a_missing_subcommand_module_is_one_line(monkeypatch, capsys, no_logging_setup):
    monkeypatch.setitem(cli.COMMANDS, "sync", ("no_such_module_here", "x"))
    assert cli.main(["sync"]) == 2
    assert capsys.readouterr().err == ("error: `kav sync` is not available in this version (no "
                                       f"module {cli.PACKAGE}.no_such_module_here)\n")


# ---- the store and the UI --------------------------------------------------------------------

def test_ui_hint_and_ui_command_use_the_default_store(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from experiments import tracking

    default = tracking.default_tracking_uri()
    assert default == f"sqlite:///{tmp_path}/mlruns/mlflow.db"  # ./mlruns/mlflow.db, absolute
    assert cli.ui_hint() == f"kav ui    (from {tmp_path})"
    assert cli.ui_hint("http://team:5000") == (
        "open http://team:5000 in a browser (the tracking server serves the MLflow UI)")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////srv/runs/mlflow.db")
    assert cli.ui_hint() == "kav ui --tracking-uri sqlite:////srv/runs/mlflow.db"
    proc = kav("ui", "--print-command", "--port", "5123", cwd=tmp_path)
    assert proc.returncode == 0
    assert (f"ui --backend-store-uri sqlite:///{tmp_path}/mlruns/mlflow.db --host 127.0.0.1 "
            "--port 5123"
            in proc.stdout), proc.stdout


def python_blocks(path: str) -> list[str]:
    """The ```python fenced blocks of a Markdown file, in order."""
    with open(path, encoding="utf-8") as f:
        return re.findall(r"^```python\n(.*?)^```", f.read(), re.M | re.S)


def running(cmd, cwd, port, timeout=180.0):
    """``cmd`` (a UI server on ``port``) until the test is done."""
    return serving(cmd, cwd, f"http://127.0.0.1:{port}/health", os.path.join(cwd, "ui.log"),
                   timeout)


@pytest.mark.slow
def test_one_store_kav_train_readme_snippets_and_kav_ui_agree(tmp_path, digits_data_dir):
    """From an empty directory: ``kav train`` logs a run (quietly), the README's Python snippets
    run as written and find it, and ``kav ui`` (no flags but the port) serves it."""
    work = tmp_path / "work"
    work.mkdir()
    proc = kav("train", "--optimizer", "amsgrad", "--workload", "digits_logreg", "--epochs", 1,
               "--data-dir", digits_data_dir, cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == f"MLflow UI: kav ui    (from {work})"
    assert "oneDNN" not in proc.stderr and "InitializeLog" not in proc.stderr, proc.stderr
    run_id = re.search(r"run_id (\w+)", proc.stdout).group(1)
    assert sorted(p.name for p in work.iterdir()) == ["mlruns"]
    store = work / "mlruns"
    assert (store / "mlflow.db").exists() and (store / "artifacts" / "kav-train").is_dir()
    assert not (store / "checkpoints" / "kav-train").exists() or not any(
        (store / "checkpoints" / "kav-train").iterdir())  # a finished run's checkpoint is removed

    # The README's Python blocks, in order, as one session (a block may use what an earlier one
    # defined, as a reader would): the reload snippet finds the run kav train logged.
    blocks = python_blocks(os.path.join(REPO, "README.md"))
    reload_block = next(i for i, b in enumerate(blocks) if "mlflow.keras.load_model" in b
                        and "search_runs" in b)
    session = ("import sys\nnamespace = {'__name__': '__main__'}\n"
               "for i, source in enumerate(sys.argv[1:]):\n"
               "    print(f'== README block {i}', flush=True)\n"
               "    exec(compile(source, f'<README python block {i}>', 'exec'), namespace)\n")
    out = subprocess.run([PYTHON, "-c", session, *blocks], cwd=work, env=env(),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    printed = out.stdout.split(f"== README block {reload_block}\n", 1)[1].split()
    assert printed[:2] == [run_id, "AMSGrad"], out.stdout

    port = free_port()
    with running([PYTHON, "-m", "experiments.cli", "ui", "--port", str(port)], work, port):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search",
            data=json.dumps({"max_results": 10}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            experiments = json.load(r)["experiments"]
        ids = [e["experiment_id"] for e in experiments if e["name"] == "kav-train"]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
            data=json.dumps({"experiment_ids": ids}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            runs = json.load(r)["runs"]
        assert [r["info"]["run_id"] for r in runs] == [run_id]
        # It names the link that opens the experiment on its training runs (not GenAI traces).
        assert (f"  kav-train: http://127.0.0.1:{port}/#/experiments/{ids[0]}/runs?"
                "workflowType=machine_learning") in (work / "ui.log").read_text()
    # Nothing was written anywhere else (no second store: no ./mlflow.db, no ./mlartifacts).
    assert sorted(p.name for p in work.iterdir() if p.name != "ui.log") == [
        "mlruns", "model.keras"], sorted(p.name for p in work.iterdir())


# ---- built-in configs by name ----------------------------------------------------------------

def test_configs_resolve_by_name_or_path(tmp_path, monkeypatch):
    from experiments import configs

    assert {"digits_quick", "digits_loguniform"} <= set(configs.names())
    builtin = configs.resolve_config("digits_quick")
    assert os.path.isfile(builtin) and builtin.endswith("digits_quick.toml")
    assert configs.resolve_config("digits_quick.toml") == builtin
    own = tmp_path / "digits_quick.toml"  # a user's file of the same name wins
    own.write_text("x = 1\n")
    monkeypatch.chdir(tmp_path)
    assert configs.resolve_config("digits_quick.toml") == "digits_quick.toml"
    assert configs.resolve_config(str(own)) == str(own)
    # The checkout path the README used resolves from any directory.
    assert configs.resolve_config("experiments/configs/digits_loguniform.toml") == \
        configs.resolve_config("digits_loguniform")
    with pytest.raises(configs.ConfigNotFoundError, match="did you mean 'digits_quick'"):
        configs.resolve_config("digits_quik")
    with pytest.raises(configs.ConfigNotFoundError, match="built-in: digits_loguniform"):
        configs.resolve_config("/nowhere/digits_quick.toml")  # a missing path is not a name
