#!/usr/bin/env bash
# GPU check, one command, about 8 minutes on one GPU (set-up of the venv not included):
#   1. SO (TeacherStudentTrainer) vs nnU-Net's nnUNetTrainer: seconds per training iteration on
#      nnU-Net's 3d_fullres plans, with nnU-Net's own CUDA autocast (AMP) (benchmarks/student.py);
#   2. DO (DualDecoderStudentTrainer) vs SO on the same plans (benchmarks/dual_decoder.py);
#   3. a short `nnunet_ts demo --scale gpu` smoke run (few cases, 2 epochs of 5 iterations per network):
#      the whole pipeline on CUDA, end to end, with its report.
# Each step has its own time limit; the output goes to the terminal and to OUT/gpu_check.log.
#
# Usage: bash scripts/gpu_check.sh [OUT]      (OUT default: ./gpu_check; run from the repository root
#        with the project's venv: .venv/bin/python, as `make setup` creates it)
set -uo pipefail
OUT=${1:-gpu_check}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
echo "== $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" || exit 1
status=0
echo "== 1/3 SO vs nnUNetTrainer, 3d_fullres, AMP (wall seconds per iteration)"
timeout 150 "$PY" scripts/benchmarks/student.py --configuration 3d_fullres --device cuda --clock wall \
    --rounds 3 --steps 5 --batches 2 --keep "$OUT/bench" || status=1
echo "== 2/3 DO vs SO, 3d_fullres, AMP"
timeout 150 "$PY" scripts/benchmarks/dual_decoder.py --configuration 3d_fullres --device cuda --clock wall \
    --rounds 2 --steps 5 --keep "$OUT/bench" || status=1
echo "== 3/3 demo smoke run: --scale gpu, 4 strong, 8 weak, 4 test cases, 2 x 5 iterations per network"
timeout 180 "$PY" -m nnunet_ts.cli.main demo --scale gpu --device cuda --out "$OUT/demo" --overwrite \
    --n-strong 4 --n-weak 8 --n-test 4 --epochs 2 --iterations 5 || status=1
echo "== done (status $status)"
exit $status
