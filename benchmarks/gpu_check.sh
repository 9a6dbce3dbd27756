#!/usr/bin/env bash
# The GPU checks of issue 15 in one run of under 8 minutes on an H200, everything on stdout: the GPU; the
# Python, torch, CUDA and cuDNN versions; the CUDA ops built and compared with the reference (gcgan doctor);
# the `cuda`-marked tests; training at ref256 batch 4 against a base revision and the reference-style loop;
# sampling at ref256 against one image per pass; then both again with --compile. The benchmarks print
# each variant's peak memory (CUDA max_memory_allocated) beside its throughput.
#
#   bash benchmarks/gpu_check.sh [--baseline REV] [--budget SECONDS] [--dry-run]
#
# --baseline REV: the revision the benchmarks compare with (default: the merge-base of HEAD and main,
#   else HEAD~1); without git, or when REV is not a commit here, the benchmarks run without one.
# --budget: seconds for all the steps together (default 460). Each step runs under `timeout` with its own
#   cap or what is left of the budget, whichever is less; with under 20 s left the rest are skipped.
#   The steps run in order of importance, so a slow machine loses the --compile rows first.
# --dry-run: print the steps' commands and run nothing.
# PYTHON names the interpreter (default: python).
set -u

PYTHON=${PYTHON:-python}
BUDGET=460
BASELINE=""
DRY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --baseline) BASELINE=$2; shift 2 ;;
        --budget) BUDGET=$2; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.." || exit 2

if [ -z "$BASELINE" ]; then
    BASELINE=$(git merge-base HEAD main 2>/dev/null || git rev-parse HEAD~1 2>/dev/null)
    BASELINE=$(git rev-parse --short "$BASELINE" 2>/dev/null || true)
fi
AGAINST=()
if [ -n "$BASELINE" ] && { [ "$DRY" = 1 ] || git rev-parse --verify --quiet "$BASELINE^{commit}" >/dev/null; }; then
    AGAINST=(--baseline "$BASELINE")
else
    echo "note: no base revision (${BASELINE:-none found}; is this a git checkout?): the benchmarks run without one"
fi

START=$SECONDS
# step NAME CAP COMMAND...: COMMAND under `timeout`, its output and exit status on stdout.
step() {
    local name=$1 cap=$2
    shift 2
    local left=$((BUDGET - (SECONDS - START)))
    local limit=$((cap < left ? cap : left))
    echo
    echo "=== $name"
    if [ "$left" -lt 20 ]; then
        echo "skipped: ${left} s of the ${BUDGET} s budget left"
        return
    fi
    echo "+ timeout $limit $*"
    if [ "$DRY" = 1 ]; then
        return
    fi
    local began=$SECONDS
    PYTHONUNBUFFERED=1 timeout --kill-after=5 "$limit" "$@" 2>&1
    local code=$?
    local how="exit $code"
    [ "$code" = 124 ] && how="timed out"
    echo "--- $name: $how after $((SECONDS - began)) s"
}

echo "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) at $(git rev-parse --short HEAD 2>/dev/null || echo '(no git)'),"\
     "budget ${BUDGET} s, base ${AGAINST[1]:-none}"
VERSIONS='import sys, torch
print("python", sys.version.split()[0], "| torch", torch.__version__, "| CUDA", torch.version.cuda,
      "| cuDNN", torch.backends.cudnn.version(), "|", torch.cuda.get_device_name(0) if torch.cuda.is_available()
      else "no GPU visible to torch")
try:
    import triton
    print("triton", triton.__version__)
except ImportError:
    print("triton: not installed (torch.compile cannot generate GPU kernels)")'
TRAIN=(benchmarks/train.py --device cuda --configs ref256 --batch 4 "${AGAINST[@]}")
SAMPLE=(benchmarks/sample.py --device cuda --configs ref256 "${AGAINST[@]}")

step "GPU" 15 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader
step "versions" 30 "$PYTHON" -c "$VERSIONS"
step "CUDA ops: build, parity with the reference" 150 "$PYTHON" -m gcgan_cli doctor --device cuda
step "cuda tests" 150 "$PYTHON" -m pytest -q -p no:cacheprovider -m cuda tests/
step "train ref256 batch 4" 150 "$PYTHON" "${TRAIN[@]}" --processes 2
step "sample ref256" 60 "$PYTHON" "${SAMPLE[@]}" --processes 1
step "train ref256 batch 4 --compile" 200 "$PYTHON" "${TRAIN[@]}" --compile --processes 1
step "sample ref256 --compile" 100 "$PYTHON" "${SAMPLE[@]}" --compile --processes 1
echo
echo "gpu_check done in $((SECONDS - START)) s"
