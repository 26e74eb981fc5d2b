"""What the wheel and the sdist hold: the ``kav`` script, the built-in configs, the LICENSE, true
metadata, and (sdist) everything its own tests need to collect. Built here with setuptools'
PEP 517 backend from a copy of the source tree; installing the wheel in a fresh venv and running
``kav`` from an empty directory is CI's job (``.ci/run``), too slow for a unit test."""

from __future__ import annotations

import ast
import email
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile

import pytest

from tests._experiment_helpers import REPO, env

SOURCE = "experiments"      # the checkout's folder (python -m experiments.X)
PACKAGE = "kav_experiments"  # the name it installs as: no clash with a user's own `experiments`

SOURCES = ["pyproject.toml", "setup.cfg", "README.md", "LICENSE", "MANIFEST.in",
           "keras_adam_variants", SOURCE, "tests", "benchmarks", "mlruns/README.md"]
APACHE_2_MD5 = "3b83ef96387f14655fc854ddc3c6bd57"  # apache.org's LICENSE-2.0.txt, verbatim


def pyproject() -> dict:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``(wheel path, sdist path)`` built from a copy of the source tree."""
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        path = os.path.join(REPO, name)
        if os.path.isdir(path):
            shutil.copytree(path, src / name, ignore=ignore)
        elif os.path.exists(path):
            os.makedirs((src / name).parent, exist_ok=True)
            shutil.copy(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    code = ("import sys\nfrom setuptools import build_meta as b\n"
            f"w = b.build_wheel({str(out)!r})\ns = b.build_sdist({str(out)!r})\n"
            "print('BUILT', w, s)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=src, env=env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, wheel, sdist = proc.stdout.strip().splitlines()[-1].split()
    return out / wheel, out / sdist


def test_license_is_the_apache_2_text():
    import hashlib

    with open(os.path.join(REPO, "LICENSE"), "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == APACHE_2_MD5
    assert pyproject()["project"]["license"] == "Apache-2.0"


def test_metadata_is_true_to_the_code():
    from packaging.specifiers import SpecifierSet

    project = pyproject()["project"]
    requires = SpecifierSet(project["requires-python"])
    uses_tomllib = []
    for root in (SOURCE, "keras_adam_variants"):
        for dirpath, _, files in os.walk(os.path.join(REPO, root)):
            for name in files:
                if name.endswith(".py"):
                    with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                        tree = ast.parse(f.read())
                    if any(isinstance(n, ast.Import) and any(a.name == "tomllib" for a in n.names)
                           for n in ast.walk(tree)):
                        uses_tomllib.append(name)
    if uses_tomllib:  # tomllib is in the standard library from Python 3.11
        assert "3.10" not in requires and "3.11" in requires, (uses_tomllib, requires)
    for url in project.get("urls", {}).values():
        assert "example" not in url and "invalid" not in url, url
    assert project["scripts"] == {"kav": f"{PACKAGE}.cli:main"}


def test_wheel_has_the_script_the_configs_and_the_license(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(f"{dist_info}/METADATA"))
        entry_points = z.read(f"{dist_info}/entry_points.txt").decode()
    for config in ("digits_quick", "digits_loguniform"):
        assert f"{PACKAGE}/configs/{config}.toml" in names
    assert f"{PACKAGE}/configs/__init__.py" in names and f"{PACKAGE}/cli.py" in names
    assert f"{dist_info}/licenses/LICENSE" in names
    assert not any(n.startswith("tests/") for n in names)
    # Two top-level packages, neither a common word a user's project may also have.
    assert {n.split("/")[0] for n in names if n.endswith(".py")} == {"keras_adam_variants", PACKAGE}
    here = {os.path.relpath(os.path.join(d, f), REPO).replace(SOURCE, PACKAGE, 1)
            for d, _, fs in os.walk(os.path.join(REPO, SOURCE)) for f in fs if f.endswith(".py")}
    assert here <= names, sorted(here - names)  # every subpackage is listed in pyproject.toml
    assert f"kav = {PACKAGE}.cli:main" in entry_points
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Requires-Python"] == ">=3.11"
    assert "example.invalid" not in str(meta)
    extras = meta.get_all("Provides-Extra")
    assert {"cpu", "gpu", "experiments", "server", "test"} <= set(extras)


@pytest.mark.slow
def test_sdist_holds_the_tests_and_they_collect(built, tmp_path):
    _, sdist = built
    with tarfile.open(sdist) as t:
        t.extractall(tmp_path, filter="data")
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for name in ("LICENSE", "setup.cfg", "tests/conftest.py", "tests/_experiment_helpers.py",
                 "tests/_postgres.py", f"{SOURCE}/configs/digits_quick.toml"):
        assert name in names, name
    here = {f"tests/{n}" for n in os.listdir(os.path.join(REPO, "tests")) if n.endswith(".py")}
    assert here <= names, sorted(here - names)
    root = tmp_path / os.path.basename(str(sdist))[: -len(".tar.gz")]
    e = env()
    e["PYTHONPATH"] = str(root)  # the sdist's own packages and tests, not this checkout's
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider"], cwd=root, env=e, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "error" not in proc.stdout.splitlines()[-1], proc.stdout[-2000:]
    collected = {line.split("::")[0] for line in proc.stdout.splitlines() if "::" in line}
    modules = {n for n in here if os.path.basename(n).startswith("test_")}
    assert collected == modules, sorted(modules - collected)


def test_a_users_own_experiments_package_does_not_clash(tmp_path):
    """A project with its own ``experiments`` package runs both its module and ``kav``'s."""
    own = tmp_path / "experiments"
    own.mkdir()
    (own / "__init__.py").write_text("")
    (own / "compare.py").write_text("print('the user s own compare')\n")
    e = env()
    e["PYTHONPATH"] = ""  # the installed package only, as outside a checkout
    mine = subprocess.run([sys.executable, "-m", "experiments.compare"], cwd=tmp_path, env=e,
                          capture_output=True, text=True, timeout=60)
    assert mine.returncode == 0 and "the user s own compare" in mine.stdout, mine.stderr[-2000:]
    ours = subprocess.run([sys.executable, "-m", f"{PACKAGE}.cli", "compare", "--help"],
                          cwd=tmp_path, env=e, capture_output=True, text=True, timeout=60)
    assert ours.returncode == 0 and "--optimizers" in ours.stdout, ours.stderr[-2000:]
