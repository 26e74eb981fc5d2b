#!/usr/bin/env bash
# One command for a machine with an NVIDIA GPU, under 8 minutes:
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # default OUT_DIR: ./gpu_check_out
#
# 1. the optimizer tests with the GPU visible (reference agreement eager/graph/XLA, save and
#    reload, Keras features, sparse gradients), quick ones only        -> optimizer_tests.txt
# 2. benchmarks/step_throughput.py on the GPU: ours against Keras' built-ins, in tf.function and
#    XLA, on `large` (8M parameters) and `huge` (100M), with the HBM roofline of a plain
#    v -= lr*g (an fp32 Adam step moves 28 bytes a parameter)        -> step_throughput.md
# 3. python -m experiments.compare --device gpu --workers <GPU count> (every optimizer, one seed,
#    one GPU per worker)                                                -> compare.txt
# plus nvidia-smi.txt, versions.txt and summary.txt (what ran, how long, exit statuses).
#
# Needs the package installed with the GPU extra (pip install -e ".[gpu,experiments,test]").
# Without a GPU it stops at once with one line and exit status 2. PYTHON picks the interpreter
# (default: python3). Each step has its own time limit; a failing step is recorded in
# summary.txt and the next one still runs; the exit status is 1 if any step failed.
set -u -o pipefail

out=${1:-./gpu_check_out}
py=${PYTHON:-python3}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

fail() { echo "error: gpu_check: $*" >&2; exit 2; }

command -v nvidia-smi >/dev/null 2>&1 \
  || fail "no NVIDIA GPU here (nvidia-smi not found); run it on a machine with an NVIDIA GPU and its driver"
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
[ "${gpus:-0}" -ge 1 ] \
  || fail "nvidia-smi finds no GPU (driver not loaded, or no device visible to this container)"
command -v "$py" >/dev/null 2>&1 || fail "no Python interpreter '$py' (set PYTHON=/path/to/python)"
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  gpus=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -cv '^ *$\|^-1$' || true)
fi
cd "$repo" || fail "cannot enter the checkout $repo"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" TF_CPP_MIN_LOG_LEVEL=2 KERAS_BACKEND=tensorflow
export TF_FORCE_GPU_ALLOW_GROWTH=true
tf_gpus=$("$py" -c "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))" 2>/dev/null | tail -1)
[ "${tf_gpus:-0}" -ge 1 ] 2>/dev/null \
  || fail "TensorFlow sees no GPU although nvidia-smi lists $gpus (install the CUDA build: pip install -e '.[gpu,experiments,test]')"

mkdir -p "$out" || fail "cannot create the output directory $out"
out=$(cd "$out" && pwd)
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
"$py" -c "import sys, keras, tensorflow as tf; print(sys.version.split()[0], 'keras', keras.__version__, 'tensorflow', tf.__version__, 'GPUs', tf.config.list_physical_devices('GPU'))" > "$out/versions.txt" 2>&1
: > "$out/summary.txt"
status=0

step() {  # step NAME LIMIT_S OUTFILE COMMAND...
  local name=$1 limit=$2 file=$3; shift 3
  local start=$SECONDS rc
  echo "[$name] $* (limit ${limit}s)" >&2
  timeout --signal=INT --kill-after=20 "$limit" "$@" > "$out/$file" 2>&1
  rc=$?
  [ $rc -eq 0 ] || status=1
  printf '%-16s exit %3d  %4d s  %s\n' "$name" "$rc" $((SECONDS - start)) "$file" | tee -a "$out/summary.txt" >&2
}

step optimizer-tests 150 optimizer_tests.txt \
  "$py" -m pytest -q -m "not slow" -p no:cacheprovider \
  tests/test_all_optimizers.py tests/test_keras_features.py tests/test_save_reload.py \
  tests/test_lazy_adam.py tests/test_validation.py
step step-throughput 180 step_throughput.md \
  "$py" benchmarks/step_throughput.py --modes function,xla --shapes large,huge --reps 3 --no-mlflow
step compare 130 compare.txt \
  "$py" -m experiments.compare --device gpu --workers "$gpus" --seeds 1 --epochs 5 \
  --tracking-uri "sqlite:///$out/mlruns/mlflow.db" --data-dir "$out/tfds"

echo "figures in $out (summary.txt)" >&2
exit $status
