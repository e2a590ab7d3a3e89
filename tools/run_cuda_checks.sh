#!/usr/bin/env bash
# The CUDA checks in one go, for a machine with a GPU and the project
# installed (tools/setup_env.sh; offline: docs/setup.md). Under 8 minutes on
# one modern GPU:
#   1. tests      the CUDA-marked tests (tests/test_cuda.py), skips = failures
#   2. train      tools/train.py on the demo config with --amp, 200 iterations,
#                 then tools/test.py on its checkpoint
#   3. dist       tools/dist_train.sh, one process, SyncBN under NCCL, 20
#                 iterations; then --resume to 40
#   4. benchmark  tools/analysis_tools/benchmark.py at 1024x2048, batch 1:
#                 plain fp32 and the prepared fp16 model (FPS), beside the
#                 paper's 65.1 FPS for SANet-S on an RTX 2080 Ti
# then one summary table; exits non-zero if any part failed.
#
#   bash tools/run_cuda_checks.sh [--dry-run] [PART ...]
#
# SANET_GPU_WHEELS=DIR first installs the project and the wheels of
# tools/gpu_wheels.sh offline (no index, nothing compiled): a bare GPU
# machine's set-up. --dry-run prints the commands only. SANET_CUDA_CHECKS_ALLOW_CPU=1 runs the
# same parts on the CPU with tiny sizes (to test this script; bf16 for fp16,
# gloo for NCCL). Output: SANET_CUDA_CHECKS_DIR (default work_dirs/cuda_checks).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT=${SANET_CUDA_CHECKS_DIR:-work_dirs/cuda_checks}
DRY=0
PARTS=()
for arg in "$@"; do
    case $arg in
        --dry-run) DRY=1 ;;
        tests|train|dist|benchmark) PARTS+=("$arg") ;;
        *) echo "unknown argument: $arg (parts: tests train dist benchmark)" >&2; exit 2 ;;
    esac
done
[ ${#PARTS[@]} = 0 ] && PARTS=(tests train dist benchmark)
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
DEMO=configs/sanet/sanet-s_demo.py
CITYSCAPES=configs/sanet/sanet-s_cityscapes.py
DATA=$OUT/data

if [ "${SANET_CUDA_CHECKS_ALLOW_CPU:-0}" = 1 ]; then
    DEVICE=cpu; ITERS=2; DIST_ITERS=2; SHAPE="64 128"; LOW=bf16
    BENCH_TIME="--seconds 0.2 --repeat 1"
    TESTS=(-m "not cuda" -k "eval_logits or prepared")  # the CPU twins, short
    SMALL="train_dataloader.batch_size=2"
    DATA_SIZE="--num-train 4 --num-val 2 --video-frames 0"
else
    DEVICE=cuda; ITERS=200; DIST_ITERS=20; SHAPE="1024 2048"; LOW=fp16
    BENCH_TIME="--seconds 3 --repeat 3"
    TESTS=(-m cuda)
    SMALL=""
    DATA_SIZE=""
    export SANET_REQUIRE_CUDA=1
fi

run() {  # echo a command, and run it unless --dry-run; output to a log
    local log=$1; shift
    echo "+ $*" | tee -a "$log"
    [ $DRY = 1 ] || "$@" >>"$log" 2>&1
}
data_args() {
    local a=()
    for split in train val test; do
        a+=("${split}_dataloader.dataset.data_root=$DATA")
    done
    echo "${a[@]}"
}

part_tests() {
    rm -f "$OUT/tests.jsonl"
    SANET_CUDA_REPORT=$OUT/tests.jsonl run "$OUT/tests.log" \
        "$PY" -m pytest tests/test_cuda.py -q -p no:cacheprovider -rs "${TESTS[@]}" || return 1
    [ $DRY = 1 ] || { tail -n 1 "$OUT/tests.log"; cat "$OUT/tests.jsonl" 2>/dev/null; }
}
part_train() {
    local work=$OUT/train_amp
    rm -rf "$work"
    # shellcheck disable=SC2046
    run "$OUT/train.log" "$PY" tools/train.py $DEMO --amp --work-dir "$work" \
        --cfg-options train_cfg.max_iters=$ITERS train_cfg.val_interval=$ITERS \
        default_hooks.checkpoint.interval=$ITERS default_hooks.logger.interval=10 \
        $SMALL $(data_args) || return 1
    # shellcheck disable=SC2046
    run "$OUT/train.log" "$PY" tools/test.py $DEMO "$work/iter_$ITERS.pth" \
        --work-dir "$work/test" --cfg-options $(data_args) || return 1
    [ $DRY = 1 ] || { grep -E "Iter\(train\) +\[ *$ITERS/" "$OUT/train.log" | tail -n 1
                      grep -E "mIoU: " "$OUT/train.log" | tail -n 1; }
}
part_dist() {
    local work=$OUT/dist_syncbn sync=()
    rm -rf "$work"
    for m in backbone neck decode_head; do sync+=("model.$m.norm_cfg.type=SyncBN"); done
    for end in $DIST_ITERS $((2 * DIST_ITERS)); do
        local resume=()
        [ "$end" != "$DIST_ITERS" ] && resume=(--resume)
        # shellcheck disable=SC2046
        run "$OUT/dist.log" bash tools/dist_train.sh $DEMO 1 --work-dir "$work" "${resume[@]}" \
            --cfg-options "${sync[@]}" train_cfg.max_iters=$end train_cfg.val_interval=100000 \
            default_hooks.checkpoint.interval=$DIST_ITERS default_hooks.logger.interval=1 \
            $SMALL $(data_args) || return 1
    done
    [ $DRY = 1 ] && return 0
    grep -q "resumed epoch: 0, iter: $DIST_ITERS" "$OUT/dist.log" \
        || { echo "the second run did not resume from iteration $DIST_ITERS"; return 1; }
    [ -f "$work/iter_$((2 * DIST_ITERS)).pth" ] || { echo "no iter_$((2 * DIST_ITERS)).pth"; return 1; }
    echo "resumed from iteration $DIST_ITERS, ended at $((2 * DIST_ITERS))"
}
part_benchmark() {
    local help extra=()
    help=$("$PY" tools/analysis_tools/benchmark.py --help 2>&1) || { echo "$help"; return 1; }
    for opt in --device --shape --backends --seconds --repeat; do
        grep -q -- "$opt" <<<"$help" || { echo "benchmark.py has no $opt"; return 1; }
    done
    # shellcheck disable=SC2086
    run "$OUT/benchmark.log" "$PY" tools/analysis_tools/benchmark.py $CITYSCAPES \
        --device $DEVICE --shape $SHAPE --backends torch:fp32,torch:$LOW $BENCH_TIME || return 1
    if grep -q -- "--compile" <<<"$help"; then  # torch.compile, where the tool offers it
        extra=(--compile)
        # shellcheck disable=SC2086
        run "$OUT/benchmark.log" "$PY" tools/analysis_tools/benchmark.py $CITYSCAPES \
            --device $DEVICE --shape $SHAPE --backends torch:$LOW $BENCH_TIME "${extra[@]}" || return 1
    fi
    [ $DRY = 1 ] || grep -iE "fps|torch:|plain" "$OUT/benchmark.log" | grep -v "^+" | tail -n 12
}

if [ -n "${SANET_GPU_WHEELS:-}" ] && [ $DRY = 0 ]; then
    echo "[cuda-checks] installing the wheels of $SANET_GPU_WHEELS and this project, offline"
    "$PY" -m pip install -q --no-index --no-deps "$SANET_GPU_WHEELS"/*.whl \
        && "$PY" -m pip install -q --no-index --find-links "$SANET_GPU_WHEELS" --no-deps -e . \
        || { echo "[cuda-checks] the offline install failed" >&2; exit 1; }
fi
probe=$("$PY" -c 'import sys, torch
print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device")
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), Python {sys.version.split()[0]}")' 2>&1)
gpu=$(tail -n 2 <<<"$probe" | head -n 1)
versions=$(tail -n 1 <<<"$probe")
echo "[cuda-checks] $gpu; $versions; device $DEVICE; output in $OUT"
if [ $DEVICE = cuda ] && [ "$gpu" = "no CUDA device" ] && [ $DRY = 0 ]; then
    echo "[cuda-checks] no CUDA device: nothing checked (SANET_CUDA_CHECKS_ALLOW_CPU=1 runs the parts on the CPU)" >&2
    exit 1
fi
if [ $DRY = 0 ] && [ ! -d "$DATA/leftImg8bit" ]; then
    "$PY" tools/dataset_converters/make_demo_dataset.py "$DATA" $DATA_SIZE || exit 1
fi

summary=() failed=0
for part in "${PARTS[@]}"; do
    echo "[cuda-checks] $part ..."
    start=$SECONDS
    "part_$part" 2>&1 | tee "$OUT/$part.out"
    if [ "${PIPESTATUS[0]}" = 0 ]; then status=ok; else status=FAILED; failed=1; fi
    summary+=("$(printf '%-10s %-7s %5ss  %s' "$part" "$status" $((SECONDS - start)) \
        "$(tail -n 1 "$OUT/$part.out" | cut -c1-100)")")
done
echo
echo "== CUDA checks: $gpu; $versions =="
printf '%-10s %-7s %6s  %s\n' part status time "last line (logs in $OUT)"
printf '%s\n' "${summary[@]}"
if [[ " ${PARTS[*]} " == *" benchmark "* ]] && [ $DRY = 0 ]; then
    echo "benchmark (batch 1, ${SHAPE/ /x}, $gpu):"
    grep -iE "^(plain|torch)" "$OUT/benchmark.log" | sed 's/^/  /'
    echo "  paper: SANet-S 65.1 FPS on an RTX 2080 Ti"
fi
exit $failed
