#!/usr/bin/env bash
# The SD v1.x GPU check (one H100: a few minutes, under 8): random weights in SD v1.x's exact
# architecture (nothing downloaded), fp16 with fp32 LoRA weights, batch 1 for training.
#   LoRA s/step and peak memory at 224 px (MEDDAP's inputs) and 512 px (SD's native size),
#   ControlNet s/step and peak memory at 512 px (the workflow's fresh ControlNet),
#   synthesis images/s at 512 px (30 DPM and 50 PNDM steps; the paper: 6.9 GB on a 2080 Ti).
# Usage, from the repository root: bash tests/benchmarks/gpu_check.sh
# GPU_CHECK_SMOKE=1 runs every step once at 64 px on whatever device there is (a CPU check of the
# script itself: its numbers are not the benchmark).
set -euo pipefail
cd "$(dirname "$0")"
export PYTHONPATH="$(cd ../.. && pwd)/src${PYTHONPATH:+:$PYTHONPATH}"
if [[ "${GPU_CHECK_SMOKE:-0}" == 1 ]]; then
    small=64 large=64 steps=1 images=1 batch=1 sampling=(--steps 2)
else
    small=224 large=512 steps=20 images=16 batch=8 sampling=()
fi
python -c 'import torch; print("torch", torch.__version__, "CUDA", torch.cuda.is_available() and torch.cuda.get_device_name(0))'
for px in "$small" "$large"; do
    python bench_lora.py --real-unet --rank 4 --steps "$steps" --resolution "$px"
done
python bench_controlnet.py --sd15 --steps "$steps" --resolution "$large"
python bench_synthesis.py --sd15 --images "$images" --batch "$batch" --resolution "$large" \
    "${sampling[@]}"
