#!/usr/bin/env bash
# One prepared check of acct's CUDA path, run in one call on a machine with a GPU.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # default OUT_DIR: gpu-check-<UTC time>
#
# Every step runs under its own time limit (GPU_CHECK_STEP_S, default 240 s) and writes
# OUT_DIR/<step>.json and OUT_DIR/<step>.log; OUT_DIR/results.json gathers them at the end.
# Without a GPU the CUDA steps are skipped with one line each, and the rest still runs, so
# the script itself is tested on a CPU (see .ci/run). It never stops at a failed step: each
# step's outcome is in its JSON ("ok", "skipped" or "failed" with the exit code).
set -uo pipefail
cd "$(dirname "$0")/.."

out="${1:-gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
limit="${GPU_CHECK_STEP_S:-240}"
py="${PYTHON:-python}"
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1

gpu=0  # set after the env step, which reports whether torch sees a CUDA device

# step NAME CUDA(0|1) COMMAND...: run COMMAND with the time limit, its stdout (JSON) to NAME.json.
step() {
  local name="$1" needs_cuda="$2"
  shift 2
  if [ "$needs_cuda" = 1 ] && [ "$gpu" = 0 ]; then
    echo "{\"skipped\": \"no CUDA device\"}" > "$out/$name.json"
    echo "gpu_check: $name skipped (no CUDA device)"
    return
  fi
  local started=$SECONDS
  timeout "$limit" "$@" > "$out/$name.stdout" 2> "$out/$name.log"
  local rc=$?
  if [ $rc -eq 0 ] && "$py" -c "import json,sys; json.load(open(sys.argv[1]))" "$out/$name.stdout" 2>/dev/null; then
    mv "$out/$name.stdout" "$out/$name.json"
  else
    cat "$out/$name.stdout" >> "$out/$name.log" 2>/dev/null
    rm -f "$out/$name.stdout"
    echo "{\"failed\": true, \"exit_code\": $rc, \"log\": \"$name.log\"}" > "$out/$name.json"
  fi
  echo "gpu_check: $name done in $((SECONDS - started)) s (exit $rc)"
}

# A training command whose JSON is the gpu_check.py run-check of the run it wrote.
train_and_check() {
  local run="$1"
  shift
  acct train --preset tiny --output-dir "$run" --overwrite "$@" >&2 && "$py" benchmarks/gpu_check.py run-check "$run"
}

eval_and_predict() {
  local run="$1"
  acct evaluate "$run" --split val --device cuda --json &&
    acct predict "$run" --question "Which of these numbers fits?" --choices 3 8 11 15 --task even_number --device cuda --json >&2
}

runs="$out/runs"
mkdir -p "$runs"

# 1. Environment and the measured bf16 matmul peak.
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi" > "$out/nvidia-smi.txt"
step env 0 "$py" benchmarks/gpu_check.py env
cuda=$("$py" -c "import json, sys; print(json.load(open(sys.argv[1])).get('cuda_available', ''))" "$out/env.json" 2>/dev/null)
if [ -z "$cuda" ]; then  # the env step failed: ask torch directly
  cuda=$("$py" -c "import torch; print(torch.cuda.is_available())" 2>/dev/null)
fi
if [ "$cuda" = True ]; then
  gpu=1
else
  echo "gpu_check: no CUDA device: the CUDA steps are skipped"
fi

# 2. CUDA smoke: bf16 autocast and fp16 with a GradScaler, then evaluate and predict on the GPU.
step smoke_bf16 1 train_and_check "$runs/bf16" --device cuda --precision bf16 --max-steps 100 --eval-every-n-steps 50
step smoke_fp16 1 train_and_check "$runs/fp16" --device cuda --precision fp16 --max-steps 100 --eval-every-n-steps 50
step smoke_eval_predict 1 eval_and_predict "$runs/bf16"
step smoke_fp32_tf32 1 train_and_check "$runs/fp32" --device cuda --precision fp32 --max-steps 50 --eval-every-n-steps 50

# 3. torchrun with NCCL, one process, 20 steps.
torchrun_and_check() {
  torchrun --nproc_per_node 1 -m acct train --preset tiny --device cuda --max-steps 20 --eval-every-n-steps 20 \
    --output-dir "$runs/torchrun" --overwrite >&2 && "$py" benchmarks/gpu_check.py run-check "$runs/torchrun"
}
step torchrun 1 torchrun_and_check

# 4. No host synchronisation inside the training step; exact resume with --deterministic.
step sync_count 1 "$py" benchmarks/gpu_check.py sync-count
step resume_exact 1 "$py" benchmarks/gpu_check.py resume-exact

# 5-6. DeBERTa-v3-base throughput (plain loop vs acct_baseline vs acct_full, MFU), per attention backend.
throughput_base() {
  "$py" benchmarks/throughput.py --size base --device cuda --short --skip cli predict tokenize \
    --json-out "$out/throughput_base.$ACCT_MODEL__ATTENTION.full" >&2 && cat "$out/throughput_base.$ACCT_MODEL__ATTENTION.full"
}
for backend in auto acct hf disentangled_flash; do
  ACCT_MODEL__ATTENTION=$backend step "throughput_base_$backend" 1 throughput_base
done

"$py" benchmarks/gpu_check.py summarize "$out" > "$out/results.json.tmp" && mv "$out/results.json.tmp" "$out/results.json"
echo "gpu_check: results in $out/results.json"
