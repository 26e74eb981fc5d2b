"""Screenshots of the MLflow UI as a user sees it after ``kav compare``: look at them.

Runs a small ``python -m experiments.compare`` (Adam, AMSGrad and SGD x 2 seeds x 3 epochs on
``digits_mlp`` by default) into a new SQLite store in a temporary directory, starts ``kav ui`` on
that store, drives headless Debian ``chromium`` with Playwright (the system browser, through
``executable_path``: nothing is downloaded) as a user would (clicks, column picks), waits for what
each page draws (run names, column headers, rendered Plotly charts) rather than for a fixed time,
and saves PNGs in ``--out``:

* ``runs.png``: the experiment's training-runs table as it opens: the compare parent, collapsed;
* ``runs-expanded.png``: the same after a click on the parent's "+": its children, with the
  params ``optimizer``, ``optimizer_name``, ``optimizer_learning_rate``, ``seed`` and the final (last epoch)
  metrics ``val_loss``, ``val_accuracy``, ``loss``, ``accuracy`` added through "Columns";
* ``runs-sorted.png``: sorted by ``val_loss`` ascending (MLflow then lists the runs flat);
* ``charts.png``: the chart view with the parent expanded: one chart per metric, each run a line
  over the epochs (x = step = the epoch from 0), every chart on screen rendered;
* ``charts-model-metrics.png``: the same scrolled to its "Model metrics" section (``val_loss``,
  ``accuracy``, ...; MLflow lists the ``effective_lr/...``-style sections first);
* ``run-effective-learning-rates.png``, ``run-learning-curves.png``: the parent's two figures
  in MLflow's artifact preview;
* ``charts-collapsed.png``: the chart view as it opens (parent collapsed): the parent's summary
  metrics only;
* ``run.png``: the parent run's overview (params, summary metrics, tags);
* ``run-artifacts.png``: the parent's artifacts, with the results table (``compare_table.csv``)
  open in MLflow's preview;
* ``compare.png``: MLflow's Compare view of the child runs (parallel coordinates of params
  against metrics, then the params/metrics tables).

    pip install playwright   # the Python package only: it drives /usr/bin/chromium
    python benchmarks/ui_screenshots.py [--out /tmp/kav-ui] [--tracking-uri URI]

``--tracking-uri`` reuses a store that already has a ``kav-compare`` run (nothing is trained).
Prints each PNG path with what it waited for; the UI server (by process group) and the browser
are stopped before it exits, also on errors (one ``error:`` line, exit 2; ``--debug`` for a
browser failure's traceback). About 3 minutes on 2 loaded cores (the compare 75-80 s, the UI
start ~20 s, the 11 pages 40-60 s). Not part of the test suite (CI time); run it by hand after
changing what the project logs, and look at the PNGs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# MLflow 3.17's UI opens every experiment in its GenAI view (traces) unless the URL says this.
TRAINING_VIEW = "workflowType=machine_learning"
PARAM_COLUMNS = ("optimizer", "optimizer_name", "optimizer_learning_rate", "seed")
METRIC_COLUMNS = ("val_loss", "val_accuracy", "loss", "accuracy")
HIDDEN_COLUMNS = ("Dataset", "Source", "Models")  # default attribute columns, unchecked for room
COMPARE_PARAMS = ("optimizer", "optimizer_learning_rate", "seed")
COMPARE_METRICS = ("val_accuracy", "val_loss")
WAIT_MS = 60_000  # the longest any page may take to draw what is waited for


def _env() -> dict:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_compare(work: str, uri: str, optimizers: str, seeds: int, epochs: int,
                data_dir: str | None) -> str:
    """``python -m experiments.compare`` in ``work`` logging to ``uri``; its last stdout line."""
    argv = [sys.executable, "-m", "experiments.compare", "--optimizers", optimizers,
            "--seeds", str(seeds), "--epochs", str(epochs), "--tracking-uri", uri]
    if data_dir:
        argv += ["--data-dir", data_dir]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=work, env=_env(), capture_output=True, text=True,
                          timeout=1800)
    if proc.returncode != 0:
        fail(f"error: {' '.join(argv[1:])} failed (exit {proc.returncode}):\n"
                 f"{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    lines = proc.stdout.strip().splitlines()
    print(f"{' '.join(argv[2:])}: {time.monotonic() - start:.0f} s", flush=True)
    for line in lines[-3:]:
        print(f"  | {line}", flush=True)
    return lines[-1] if lines else ""


def fail(message: str) -> None:
    """Exit with status 2 and the one-line (or short) ``message`` on stderr."""
    print(message, file=sys.stderr, flush=True)
    sys.exit(2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.load(r)


@contextlib.contextmanager
def kav_ui(uri: str, port: int, log_path: str, timeout: float = 180.0):
    """``kav ui --tracking-uri URI --port PORT`` until the block ends (its process group is
    killed); yields the base URL once ``/health`` answers."""
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "experiments.cli", "ui", "--tracking-uri", uri,
                             "--port", str(port)], cwd=REPO, env=_env(), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                fail(f"error: kav ui exited:\n{open(log_path).read()[-3000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            if time.monotonic() > deadline:
                fail(f"error: kav ui did not answer in {timeout:.0f} s (log: {log_path})")
            time.sleep(0.5)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        log.close()


def chromium(path: str | None) -> str:
    for candidate in ([path] if path else ["chromium", "chromium-browser", "google-chrome"]):
        found = shutil.which(candidate) or (candidate if os.path.isfile(candidate) else None)
        if found:
            return found
    fail("error: no chromium found: apt-get install -y chromium, or pass --chromium PATH")


# ---- the pages ---------------------------------------------------------------------------------

# True once every chart card on screen holds a drawn Plotly plot and no card shows a spinner.
CHARTS_DRAWN = """() => {
  const cards = [...document.querySelectorAll('[data-testid="experiment-view-compare-runs-card"]')]
    .filter(c => { const r = c.getBoundingClientRect();
                   return r.bottom > 0 && r.top < window.innerHeight && r.height > 0; });
  if (cards.length === 0) return false;
  return cards.every(c => c.querySelector('.js-plotly-plot .main-svg') && !c.querySelector(
    '[role="progressbar"], [class*="spin"], [aria-busy="true"]'));
}"""
# The number of Plotly plots drawn on the page (parallel coordinates and the like).
PLOTS_DRAWN = "() => document.querySelectorAll('.js-plotly-plot .main-svg').length"


# True once the artifact preview shows an image (MLflow loads it as a blob: URL), loaded.
IMAGE_SHOWN = """() => [...document.querySelectorAll('img')].some(
  i => i.complete && i.naturalWidth > 100 && i.getBoundingClientRect().width > 100)"""


def close_assistant(page) -> None:
    """Close MLflow 3.17's "MLflow Assistant" panel (a quarter of the screen) when it is open."""
    button = page.locator('button[data-component-id="mlflow.assistant.chat_panel.close"]')
    with contextlib.suppress(Exception):
        button.click(timeout=3000)


def view_mode(page, mode: str) -> None:
    """Click the runs page's view switch: ``TABLE``, ``CHART`` or ``ARTIFACT``."""
    page.locator("label").filter(
        has=page.locator(f'input[name="runs-view-mode"][value="{mode}"]')).first.click()


def pick_columns(page, checks: dict[str, bool]) -> None:
    """Set the runs table's "Columns" checkboxes: ``{column name: shown}``."""
    page.get_by_role("button", name="Columns", exact=True).click()
    search = page.get_by_placeholder("Search columns")
    tree = page.locator('[data-testid="column-selector-tree"]')
    for name, shown in checks.items():
        search.fill(name)
        title = page.locator("span[title]").filter(has_text=re.compile(f"^{re.escape(name)}$"))
        node = tree.locator(".du-bois-light-tree-treenode").filter(has=title).first
        node.wait_for(timeout=WAIT_MS)
        checked = "du-bois-light-tree-treenode-checkbox-checked" in (
            node.get_attribute("class") or "")
        if checked != shown:
            node.locator("span[title]").first.click()
    search.fill("")
    page.keyboard.press("Escape")


def expand_parent(page, parent: str, children: list[str]) -> None:
    """Click the "+" beside the run ``parent`` and wait until every child's name shows."""
    row = page.locator('[role="row"]').filter(has_text=parent).first
    row.locator('button[data-component-id*="runnamecellrenderer"]').click(timeout=WAIT_MS)
    for child in children:
        page.get_by_text(child, exact=True).first.wait_for(timeout=WAIT_MS)


def header(page, name: str):
    return page.locator('[role="columnheader"]').filter(
        has_text=re.compile(f"^{re.escape(name)}$")).first


def wait_for_headers(page, names) -> None:
    for name in names:
        header(page, name).wait_for(timeout=WAIT_MS)


def widen_columns(page, widths: dict[str, int]) -> None:
    """Drag each column's right edge ``{name: pixels}`` wider, as a user does: MLflow's default
    width cuts ``optimizer_name`` values to "keras_ada..." and its header to "optimizer_learn"."""
    for name, pixels in widths.items():
        cell = header(page, name).locator(
            "xpath=ancestor::div[contains(concat(' ', @class, ' '), ' ag-header-cell ')][1]")
        before = cell.bounding_box()
        handle = cell.locator(".ag-header-cell-resize").first
        handle.hover()
        box = handle.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.down()
        page.mouse.move(x + pixels / 2, y, steps=5)
        page.mouse.move(x + pixels, y, steps=5)
        page.mouse.up()
        after = cell.bounding_box()
        print(f"  column {name}: {before['width']:.0f} -> {after['width']:.0f} px", flush=True)


def shoot(page, out: str, name: str, waited: str, full_page: bool = False) -> str:
    path = os.path.join(out, f"{name}.png")
    page.screenshot(path=path, full_page=full_page)
    print(f"{path}  ({waited})", flush=True)
    return path


def screenshots(browser_path: str, base: str, eid: str, parent: dict, children: list[dict],
                out: str) -> list[str]:
    from playwright.sync_api import sync_playwright

    parent_name = parent["info"]["run_name"]
    child_names = sorted(c["info"]["run_name"] for c in children)
    runs_url = f"{base}/#/experiments/{eid}/runs?{TRAINING_VIEW}"
    shots = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path,
                                     args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.set_default_timeout(WAIT_MS)

            # The chart view as a fresh browser opens it: the parent is collapsed.
            page.goto(f"{runs_url}&compareRunsMode=CHART")
            close_assistant(page)
            page.wait_for_function(CHARTS_DRAWN, timeout=WAIT_MS)
            shots.append(shoot(page, out, "charts-collapsed", "every chart card drawn"))

            page.goto(runs_url)
            view_mode(page, "TABLE")
            page.get_by_text(parent_name, exact=True).first.wait_for()
            shots.append(shoot(page, out, "runs", f"run {parent_name!r} listed"))

            expand_parent(page, parent_name, child_names)
            pick_columns(page, {**{c: False for c in HIDDEN_COLUMNS},
                                **{c: True for c in PARAM_COLUMNS + METRIC_COLUMNS}})
            wait_for_headers(page, PARAM_COLUMNS + METRIC_COLUMNS)
            widen_columns(page, {"optimizer_name": 110, "optimizer_learning_rate": 80})
            shots.append(shoot(page, out, "runs-expanded",
                               f"{len(child_names)} children and the columns "
                               f"{', '.join(PARAM_COLUMNS + METRIC_COLUMNS)}"))

            header(page, "val_loss").click()  # sorts descending, then:
            page.wait_for_url(re.compile("orderByKey=metrics.*val_loss"))
            page.goto(re.sub("orderByAsc=false", "orderByAsc=true", page.url))
            page.get_by_text(child_names[0], exact=True).first.wait_for()
            wait_for_headers(page, METRIC_COLUMNS)
            shots.append(shoot(page, out, "runs-sorted", "sorted by val_loss, ascending"))

            # The chart view with the children shown: their learning curves.
            page.goto(runs_url + "&orderByKey=attributes.start_time&orderByAsc=false")
            page.get_by_text(child_names[0], exact=True).first.wait_for()
            page.set_viewport_size({"width": 1920, "height": 2400})
            view_mode(page, "CHART")
            page.wait_for_function(CHARTS_DRAWN, timeout=WAIT_MS)
            shots.append(shoot(page, out, "charts", "every chart card on screen drawn"))
            # MLflow puts metrics without a "/" in "Model metrics", after the sections of the
            # "<section>/<name>" ones: scroll to it.
            page.locator('[data-testid="experiment-view-compare-runs-section-header"]').filter(
                has_text="Model metrics").first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_function(CHARTS_DRAWN, timeout=WAIT_MS)
            shots.append(shoot(page, out, "charts-model-metrics",
                               "scrolled to 'Model metrics', every chart card on screen drawn"))
            page.set_viewport_size({"width": 1920, "height": 1080})

            run_url = f"{base}/#/experiments/{eid}/runs/{parent['info']['run_id']}"
            page.goto(f"{run_url}?{TRAINING_VIEW}")
            page.get_by_text("best_val_loss").first.wait_for()
            page.get_by_role("link", name=child_names[0]).first.wait_for()  # "Child runs" loaded
            shots.append(shoot(page, out, "run", "the parent's overview: best_val_loss, "
                               "child run links"))

            page.goto(f"{run_url}/artifacts?{TRAINING_VIEW}")
            page.get_by_text("compare_table.csv", exact=True).first.click()
            page.get_by_text("val_loss_mean").first.wait_for()
            shots.append(shoot(page, out, "run-artifacts",
                               "compare_table.csv previewed (column val_loss_mean)"))
            for artifact in ("effective_learning_rates.png", "learning_curves.png"):
                link = page.get_by_text(artifact, exact=True)
                if link.count() == 0:
                    print(f"note: the parent has no {artifact}", flush=True)
                    continue
                link.first.click()
                page.get_by_text(re.compile(rf"^{re.escape(artifact)}$")).nth(1).wait_for()
                page.wait_for_function(IMAGE_SHOWN, timeout=WAIT_MS)
                shots.append(shoot(page, out, f"run-{artifact[:-4].replace('_', '-')}",
                                   f"{artifact} previewed and loaded"))

            ids = urllib.parse.quote(json.dumps([c["info"]["run_id"] for c in children]))
            page.goto(f"{base}/#/compare-runs?runs={ids}&experiments="
                      f"{urllib.parse.quote(json.dumps([eid]))}&{TRAINING_VIEW}")
            page.wait_for_function(f"() => ({PLOTS_DRAWN})() > 0", timeout=WAIT_MS)
            # Parallel coordinates of what the study varies against its main metrics (MLflow's
            # default picks the first params and one metric: optimizer_beta_1, train_loss_step...).
            page.get_by_role("button", name="Clear All").click()
            boxes = page.get_by_role("combobox")  # "Parameters:", then "Metrics:"
            for box, names in ((boxes.nth(0), COMPARE_PARAMS), (boxes.nth(1), COMPARE_METRICS)):
                for name in names:
                    box.click()
                    box.fill(name)
                    page.locator(".du-bois-light-select-item-option").filter(
                        has_text=re.compile(f"^{re.escape(name)}$")).first.click()
                page.keyboard.press("Escape")
            page.locator(".js-plotly-plot").first.get_by_text(COMPARE_METRICS[-1]).first.wait_for()
            shots.append(shoot(page, out, "compare", "a Plotly plot drawn", full_page=True))
        finally:
            browser.close()
    return shots


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="/tmp/kav-ui", help="where the PNGs go (default %(default)s)")
    p.add_argument("--tracking-uri", default=None,
                   help="a store that already has a kav-compare run (default: train one into a "
                        "new temporary directory)")
    p.add_argument("--optimizers", default="adam,amsgrad,sgd")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--data-dir", default=None, help="TFDS data dir (default: TFDS's)")
    p.add_argument("--chromium", default=None, help="the browser (default: chromium on PATH)")
    p.add_argument("--debug", action="store_true", help="a browser failure's full traceback")
    args = p.parse_args(argv)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        fail("error: the Python package playwright is missing: pip install playwright (it "
                 "drives the system chromium; no `playwright install` needed)")
    browser = chromium(args.chromium)
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="kav-ui-")
    uri = args.tracking_uri or f"sqlite:///{work}/mlflow.db"
    if args.tracking_uri is None:
        last = run_compare(work, uri, args.optimizers, args.seeds, args.epochs, args.data_dir)
        if not last.startswith("MLflow UI: "):
            print(f"note: compare's last line is not the UI hint: {last!r}", flush=True)
    with kav_ui(uri, free_port(), os.path.join(work, "ui.log")) as base:
        experiments = api(base, "experiments/search", {"max_results": 1000})["experiments"]
        found = [e["experiment_id"] for e in experiments if e["name"] == "kav-compare"]
        if not found:
            fail(f"error: no experiment kav-compare in {uri}")
        eid = found[0]
        runs = api(base, "runs/search", {"experiment_ids": [eid], "max_results": 1000,
                                         "order_by": ["attributes.start_time DESC"]})["runs"]
        tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
        parents = [r for r, t in zip(runs, tags) if "mlflow.parentRunId" not in t]
        if not parents:
            fail(f"error: no parent run in kav-compare of {uri}")
        parent = parents[0]  # the newest
        children = [r for r, t in zip(runs, tags)
                    if t.get("mlflow.parentRunId") == parent["info"]["run_id"]]
        start = time.monotonic()
        from playwright.sync_api import Error as PlaywrightError

        try:
            shots = screenshots(browser, base, eid, parent, children, args.out)
        except PlaywrightError as err:
            if args.debug:
                raise
            fail(f"error: the MLflow UI did not show what the script waits for: "
                 f"{str(err).splitlines()[0]} (PNGs so far in {args.out}; --debug for the "
                 "traceback; MLflow's UI may have changed: update the selectors)")
    print(f"{len(shots)} screenshots in {time.monotonic() - start:.0f} s; store {uri} "
          f"(parent {parent['info']['run_name']}, {len(children)} children)")
    if args.tracking_uri:
        shutil.rmtree(work, ignore_errors=True)  # only the UI's log: the store is the user's
    return 0


if __name__ == "__main__":
    sys.exit(main())
