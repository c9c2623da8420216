#!/usr/bin/env bash
# The GPU check, for a machine with a GPU and no package registry (issue 15, item 6).
#
#   bench/gpu_check.sh WHEELS [OUT]
#
# WHEELS: a folder of wheels brought along (how to download them: docs/performance.md,
# "GPU check"); OUT: where the table and logs go (default build/gpu-check). It makes a
# virtual environment from those wheels only (no index), puts the GPU build of FAISS in
# place of faiss-cpu (the project itself is a wheel among them: tests and benches run
# from this checkout against it), then runs `pytest -m gpu` and bench/gpu.py in fast and exact mode,
# each stage under a time limit, and writes OUT/gpu-check.md: one table. Under 8 minutes
# in all (install 2, tests 2, each bench 1.5 + the CPU references).
# Dataset: GPNN_DATASET (default ../shared/datasets/sigd16, SIGD16 *.jpg), else the
# bundled demo photo alone.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=$(realpath "${1:?usage: bench/gpu_check.sh WHEELS [OUT]}")
OUT=$(realpath -m "${2:-build/gpu-check}")
IMAGES=${GPNN_GPU_CHECK_IMAGES:-4}
SAMPLES=${GPNN_GPU_CHECK_SAMPLES:-20}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
mkdir -p "$OUT"
VENV="$OUT/venv"
TABLE="$OUT/gpu-check.md"
START=$(date +%s)

stage() {  # stage NAME LIMIT_S COMMAND...: run, log, and record ok/FAILED/TIMED OUT and seconds
    local name=$1 limit=$2 began rc
    shift 2
    began=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    local took=$(($(date +%s) - began))
    case $rc in
        0) STATUS[$name]="ok" ;;
        124) STATUS[$name]="TIMED OUT after ${limit} s" ;;
        *) STATUS[$name]="FAILED (exit $rc)" ;;
    esac
    SECONDS_OF[$name]=$took
    echo "$name: ${STATUS[$name]} in ${took} s (log: $OUT/$name.log)"
}
declare -A STATUS SECONDS_OF

export PYTHON VENV WHEELS
# faiss-cpu (a core dependency) and faiss-gpu both install the `faiss` module: keep the GPU one.
stage install 150 bash -c 'set -e
    "$PYTHON" -m venv --clear "$VENV"
    "$VENV/bin/pip" install --no-index --find-links "$WHEELS" "gpnn[gpu]" pytest pytest-timeout
    "$VENV/bin/pip" uninstall -y faiss-cpu
    "$VENV/bin/pip" install --no-index --find-links "$WHEELS" --force-reinstall --no-deps faiss-gpu'

DATASET=${GPNN_DATASET:-../shared/datasets/sigd16}
if ! ls "$DATASET"/*.jpg >/dev/null 2>&1; then
    DATASET="$OUT/demo-dataset"
    mkdir -p "$DATASET" && cp core/data/demo.jpg "$DATASET/1.jpg"
    IMAGES=1
fi

stage device 60 "$VENV/bin/python" - <<'EOF'
import faiss, torch
from gpnn.core import device
print("faiss", faiss.__version__, "gpus", device.faiss_gpus())
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(), "capability", torch.cuda.get_device_capability())
print("backend for cuda:", device.resolve_device("cuda"))
EOF
stage pytest 150 "$VENV/bin/pytest" -m gpu -p no:cacheprovider -q -rs tests/core/test_gpu_search.py
for mode in fast exact; do
    stage "bench-$mode" 120 "$VENV/bin/python" bench/gpu.py --mode "$mode" --images "$IMAGES" \
        --samples "$SAMPLES" --repeats 3 --dataset "$DATASET"
done

summary() {  # the bench's last line (latency, throughput, quality), or its last error line
    grep -h "median latency" "$OUT/$1.log" || tail -n 1 "$OUT/$1.log"
}
{
    echo "GPU check, $(date -u +%Y-%m-%dT%H:%MZ), $(nvidia-smi --query-gpu=name,driver_version \
        --format=csv,noheader 2>/dev/null | head -n 1 || echo 'nvidia-smi missing')"
    echo
    echo "| stage | status | s | result |"
    echo "|---|---|---:|---|"
    echo "| install from $WHEELS | ${STATUS[install]} | ${SECONDS_OF[install]} | $(grep -h '^Successfully installed' "$OUT/install.log" | tail -n 1 | cut -c1-80) |"
    echo "| device | ${STATUS[device]} | ${SECONDS_OF[device]} | $(tr '\n' ';' <"$OUT/device.log" | cut -c1-200) |"
    echo "| pytest -m gpu | ${STATUS[pytest]} | ${SECONDS_OF[pytest]} | $(tail -n 1 "$OUT/pytest.log") |"
    for mode in fast exact; do
        echo "| bench/gpu.py --mode $mode ($IMAGES images x $SAMPLES samples) | ${STATUS[bench-$mode]} | ${SECONDS_OF[bench-$mode]} | $(summary "bench-$mode") |"
    done
    echo
    echo "total $(($(date +%s) - START)) s"
} >"$TABLE"
cat "$TABLE"
