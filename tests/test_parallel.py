"""Studies on several worker processes (``experiments.parallel``): the same numbers as one
after the other, a failing child reported while the others go on, and Ctrl-C (a real SIGINT to
the process group) marking every started run KILLED. Real parts throughout: TFDS digits, Keras
training, spawned worker processes, a SQLite MLflow store."""

import os
import signal
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import mlflow  # noqa: E402
import pytest  # noqa: E402

from experiments import compare, parallel  # noqa: E402
from tests._experiment_helpers import (  # noqa: E402,F401
    REPO, digits_data_dir, env, interrupt_when)


def test_engine_checks_are_one_line_errors(monkeypatch):
    with pytest.raises(ValueError, match="--workers must be at least 1"):
        parallel.check_engine(0, "cpu", None, "sqlite:///x.db")
    with pytest.raises(ValueError, match="is a file of this machine"):
        parallel.check_engine(2, "cpu", "tcp://127.0.0.1:8786", "sqlite:////tmp/x.db")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert parallel.gpu_ids() == ["0", "1"] and parallel.default_workers("gpu") == 2
    with pytest.raises(ValueError, match="one GPU per worker; 2 visible"):
        parallel.check_engine(3, "gpu", None, "sqlite:///x.db")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert parallel.default_workers("gpu") == 1
    with pytest.raises(ValueError, match="--device gpu: no NVIDIA GPU visible"):
        parallel.check_engine(1, "gpu", None, "sqlite:///x.db")
    assert parallel.default_workers("cpu") == os.cpu_count()


def test_workers_flag_is_parsed_before_tensorflow_loads():
    code = ("import sys; from experiments import compare, sweep, kingma_ba\n"
            "a = compare.build_parser().parse_args(['--workers', '3', '--device', 'gpu'])\n"
            "assert a.workers == 3 and a.device == 'gpu'\n"
            "sweep.build_parser().parse_args(['--config', 'x', '--workers', '2'])\n"
            "kingma_ba.build_parser().parse_args(['--section', '6.1', '--workers', '2'])\n"
            "assert 'tensorflow' not in sys.modules and 'mlflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env(), check=True, timeout=60)
    out = subprocess.run([sys.executable, "-m", "experiments.compare", "--workers", "0"],
                         cwd=REPO, env=env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--workers expects an integer >= 1" in out.stderr


@pytest.mark.slow
def test_two_workers_give_the_sequential_numbers_and_a_failed_child_is_reported(
        tmp_path, digits_data_dir):  # noqa: F811
    from tests._study_helpers import FailingSchedule

    good = compare.arms_from_names(["adam", "sgd"])
    broken = compare.Arm("Broken", "adam", None, {"learning_rate": FailingSchedule()})
    common = dict(workload="digits_logreg", seeds=[0, 1], epochs=2, data_dir=digits_data_dir,
                  experiment="test-parallel", effective_lr_every=0)
    seq_uri = f"sqlite:///{tmp_path}/seq/mlflow.db"
    par_uri = f"sqlite:///{tmp_path}/par/mlflow.db"
    sequential = compare.run_study(good, tracking_uri=seq_uri, workers=1, **common)
    compare.finish(sequential)
    parallel_ = compare.run_study([good[0], broken, good[1]], tracking_uri=par_uri, workers=2,
                                  **common)
    assert compare.finish(parallel_) == "FAILED"  # a child failed

    # The same seeds give the same numbers, value for value, whatever process trained them.
    ok = [o for o in parallel_.outcomes if o.ok]
    assert [(o.arm.label, o.seed) for o in ok] == [(o.arm.label, o.seed)
                                                  for o in sequential.outcomes]
    for a, b in zip(sequential.outcomes, ok):
        for key in ("loss", "val_loss", "val_accuracy"):
            assert a.history[key] == b.history[key], (a.arm.label, a.seed, key)
    seq_table = compare.summarize(sequential)
    par_table = compare.summarize(parallel_)
    assert par_table.rows[:2] and [
        {k: v for k, v in r.items() if k not in ("s_per_epoch", "first_epoch_s")}
        for r in par_table.rows if r["optimizer"] != "Broken"] == [
        {k: v for k, v in r.items() if k not in ("s_per_epoch", "first_epoch_s")}
        for r in seq_table.rows]
    # The failed child: in the table (last, 0 seeds, 2 failed), FAILED in the store, one line.
    last = par_table.rows[-1]
    assert last["optimizer"] == "Broken" and last["seeds"] == 0 and last["failed"] == 2
    failed = [o for o in parallel_.outcomes if not o.ok]
    assert len(failed) == 2 and all("injected failure" in o.error for o in failed)
    client = mlflow.MlflowClient(par_uri)
    for o in failed:
        assert o.run_id is not None and client.get_run(o.run_id).info.status == "FAILED"
    children = client.search_runs([parallel_.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parallel_.parent_run_id}'")
    assert len(children) == 6
    assert len({c.data.tags["kav.worker"] for c in children}) == 2  # two processes trained
    assert sorted(c.info.status for c in children).count("FINISHED") == 4
    assert client.get_run(parallel_.parent_run_id).info.status == "FAILED"


def _children(client, experiment, parent_id=None):
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return [], None
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags], (parents or [None])[0]


@pytest.mark.slow
def test_ctrl_c_marks_every_started_run_and_the_parent_killed(
        tmp_path, digits_data_dir):  # noqa: F811
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cmd = [sys.executable, "-m", "experiments.compare", "--optimizers", "adam,sgd", "--seeds",
           "2", "--epochs", "1000", "--workers", "2", "--tracking-uri", uri, "--data-dir",
           digits_data_dir, "--experiment", "test-sigint", "--log-effective-lr", "0"]
    client = mlflow.MlflowClient(uri)

    def two_children_training():  # an epoch logged each
        if not os.path.exists(tmp_path / "mlflow.db"):
            return False
        children, _ = _children(client, "test-sigint")
        return sum(1 for c in children if "val_loss" in c.data.metrics) >= 2

    proc, output = interrupt_when(cmd, tmp_path, tmp_path / "compare.log", two_children_training)
    assert proc.returncode == 130, output[-3000:]
    assert "interrupted: every started run is marked KILLED" in output
    children, parent = _children(client, "test-sigint")
    assert parent.info.status == "KILLED"
    assert len(children) >= 2 and all(c.info.status == "KILLED" for c in children), (
        [(c.info.run_name, c.info.status) for c in children], output[-3000:])
    for child in children:  # every epoch trained before the stop is in the store
        history = client.get_metric_history(child.info.run_id, "val_loss")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(
            range(len(history)))  # epochs from 0, as mlflow.keras.autolog logs them
    deadline = time.monotonic() + 30  # no worker left behind
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.5)
    else:
        left = subprocess.run(["ps", "-o", "pid,args", "-g", str(proc.pid)], capture_output=True,
                              text=True).stdout
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"processes left in the study's group after it exited:\n{left}")


GPU_CHECK = os.path.join(REPO, "benchmarks", "gpu_check.sh")


def test_gpu_check_script_fails_in_one_line_without_a_gpu(tmp_path):
    subprocess.run(["bash", "-n", GPU_CHECK], check=True)
    bin_dir = tmp_path / "bin"  # a PATH with bash and coreutils but no nvidia-smi
    bin_dir.mkdir()
    for tool in ("bash", "grep", "tr", "dirname", "timeout", "mkdir", "tee", "python3"):
        found = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True,
                               text=True).stdout.strip()
        if found:
            os.symlink(found, bin_dir / tool)
    out = subprocess.run(["bash", GPU_CHECK, str(tmp_path / "out")], capture_output=True,
                         text=True, timeout=60, env={**env(), "PATH": str(bin_dir)})
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr.startswith("error: gpu_check: no NVIDIA GPU here")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_gpu_check_script_refuses_a_tensorflow_without_gpu(tmp_path):
    fake = tmp_path / "bin"  # nvidia-smi lists a GPU, but this TensorFlow has none
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: Fake GPU (UUID: GPU-0)'\n")
    (fake / "nvidia-smi").chmod(0o755)
    out = subprocess.run(["bash", GPU_CHECK, str(tmp_path / "out")], capture_output=True,
                         text=True, timeout=120,
                         env={**env(), "PATH": f"{fake}:{os.environ['PATH']}",
                              "PYTHON": sys.executable})
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "TensorFlow sees no GPU although nvidia-smi lists 1" in out.stderr


def test_a_reused_compiled_model_trains_the_values_of_a_fresh_one():
    import keras
    import numpy as np
    from sklearn.datasets import load_digits

    import keras_adam_variants as kav
    from experiments.model_reuse import CompiledModels

    digits = load_digits()
    x = (digits.images[:600] / 16.0).reshape(-1, 64).astype("float32")
    y = digits.target[:600]

    def build():
        model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dropout(0.3),  # its seed state is reset too
                                  keras.layers.Dense(10)])
        optimizer = kav.AMSGrad(learning_rate=0.01)
        model.compile(optimizer=optimizer, jit_compile=False, metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model, optimizer

    def fit(model):
        return model.fit(x[:500], y[:500], batch_size=128, epochs=2, shuffle=False, verbose=0,
                         validation_data=(x[500:], y[500:])).history

    fresh = {}
    for seed in (0, 1, 0):
        keras.utils.set_random_seed(seed)
        fresh.setdefault(seed, fit(build()[0]))
    cache, functions = CompiledModels(), []
    for seed in (0, 1, 0):
        model, optimizer = cache.get(seed, build, key="amsgrad")
        history = fit(model)
        assert history == fresh[seed], seed  # value for value
        assert int(optimizer.iterations.numpy()) == 2 * 4  # counted from 0 again
        functions.append(model.train_function)
    assert cache.misses == 1 and cache.hits == 2
    assert functions[0] is functions[1] is functions[2]  # traced once
    assert np.isfinite(fresh[1]["val_loss"]).all()


def test_jobs_with_a_schedule_defined_in_a_function_reach_a_worker_intact(tmp_path):
    from experiments import train
    from experiments.reddi_synthetic import inverse_sqrt_schedule

    config = train.TrainConfig(optimizer="adam", opt={"learning_rate": inverse_sqrt_schedule(0.5)})
    (tmp_path / "job.bin").write_bytes(parallel.pack(parallel.Job(0, "Adam", 0, config, "p")))
    code = ("import sys, keras; from experiments import parallel\n"
            "job = parallel.unpack(open(sys.argv[1], 'rb').read())\n"
            "lr = job.config.opt['learning_rate']\n"
            "print(keras.saving.get_registered_name(type(lr)), lr.alpha, float(lr(3)))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "job.bin")], cwd=REPO,
                         env=env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["kav_experiments>InverseSqrtDecay", "0.5", "0.25"]


@pytest.mark.slow
def test_a_study_run_on_a_reused_model_logs_what_a_fresh_run_logs(
        tmp_path, digits_data_dir):  # noqa: F811
    """train.run with a CompiledModels (what studies pass): the second seed reuses the first
    seed's compiled model, and every value it logs equals that of the same seed run fresh."""
    from experiments import train
    from experiments.model_reuse import CompiledModels

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    common = dict(optimizer="amsgrad", workload="digits_logreg", epochs=2, jit=False,
                  log_model=False, tracking_uri=uri, experiment="test-reuse", log_every=3,
                  data_dir=digits_data_dir, effective_lr_every=4, effective_lr_histograms=False,
                  log_learning_curve=False)
    models = CompiledModels()
    train.run(train.TrainConfig(seed=0, run_name="first", **common), models=models)
    reused = train.run(train.TrainConfig(seed=1, run_name="reused", **common), models=models)
    assert (models.misses, models.hits) == (1, 1)
    fresh = train.run(train.TrainConfig(seed=1, run_name="fresh", **common))
    client = mlflow.MlflowClient(uri)
    runs = {r: client.get_run(r) for r in (reused.run_id, fresh.run_id)}
    timing = {"epoch_time", "examples_per_second"}
    keys = set(runs[fresh.run_id].data.metrics) - timing
    assert {"val_loss", "train_loss_step"} <= keys and any("effective_lr" in k for k in keys)
    assert keys == set(runs[reused.run_id].data.metrics) - timing

    def logged(run_id):
        return {k: [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, k),
                                                       key=lambda m: m.step)] for k in keys}
    assert logged(reused.run_id) == logged(fresh.run_id)  # value for value, step for step
    params = [{k: v for k, v in runs[r].data.params.items() if k != "seed"} for r in runs]
    assert params[0] == params[1]
    artifacts = {a.path for a in client.list_artifacts(fresh.run_id)}
    assert "learning_curve.png" not in artifacts and "config.json" in artifacts


def test_batches_keep_the_seeds_of_one_arm_on_one_worker():
    def jobs(spec):
        return [parallel.Job(i, label, seed, None, "p")
                for i, (label, seed) in enumerate((lb, s) for lb, n in spec for s in range(n))]

    def shape(batches):
        return [[(j.label, j.seed) for j in b] for b in batches]

    many = jobs([("A", 3), ("B", 3), ("C", 3)])
    assert shape(parallel.batches(many, 2)) == [[("A", 0), ("A", 1), ("A", 2)],
                                                [("B", 0), ("B", 1), ("B", 2)],
                                                [("C", 0), ("C", 1), ("C", 2)]]
    one_arm = jobs([("A", 8)])  # every worker gets work
    assert [len(b) for b in parallel.batches(one_arm, 4)] == [2, 2, 2, 2]
    assert [len(b) for b in parallel.batches(one_arm, 8)] == [1] * 8
    assert [j.index for b in parallel.batches(many, 4) for j in b] == list(range(9))


def test_study_children_draw_their_learning_curve_only_when_asked():
    arms = [compare.Arm("Adam", "adam")]
    rates = {"Adam": 0.001}
    for asked in (False, True):
        jobs = compare.make_jobs(arms, [0, 1], "p", learning_rates=rates, child_plots=asked,
                                 workload="digits_mlp")
        assert [j.config.log_learning_curve for j in jobs] == [asked, asked]
