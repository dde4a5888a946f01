#!/usr/bin/env bash
# The GPU checks the issues name, as one prepared script for a session that is lent a GPU machine
# (the device tool's `run`, from the repository root; about 8 minutes on one H200).
#
#   run(command="bash benchmarks/gpu_checks.sh", timeout_s=560)
#
# It uses the machine's own python3 (PyTorch, CuPy, numba, scikit-learn are there; faiss may not be),
# installs xmrank from the working tree without dependencies, and writes every log under $OUT:
#   1. the GPU-marked tests (cupy kernels against golden, cuda:N, the bf16 tensor-core search);
#   2. the SYSU-sized modality-aware Jaccard on the GPU (34,167 x 2048; the paper reports 68 s);
#   3. trainer throughput at 288x144 (ResNet-50 + AGW), float32 and --amp, 0 and 8 workers;
#   4. a few iterations of the paper preset on the synthetic set, with and without --amp, and
#      `xmrank test` on the result.
# Each step is bounded with `timeout` so that one hang leaves time for the rest.
set -u
OUT=${OUT:-/tmp/xmrank_gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XMRANK_CACHE_DIR=/tmp/xmrank_cache OMP_WAIT_POLICY=PASSIVE
PY=python3
step() { echo "=== $1"; }

step "environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/env.txt"
$PY -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__)" 2>&1 | tee -a "$OUT/env.txt"
$PY -c "import cupy; print('cupy', cupy.__version__)" 2>&1 | tee -a "$OUT/env.txt"
$PY -c "import faiss; print('faiss', faiss.__version__, 'gpus', faiss.get_num_gpus())" 2>&1 | tee -a "$OUT/env.txt"
$PY -m pip install --no-deps --no-build-isolation -q -e . 2>&1 | tail -2 | tee -a "$OUT/env.txt"

step "1. GPU tests"
timeout 120 $PY -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tee "$OUT/gpu_tests.txt" | tail -15

step "2. SYSU-sized Jaccard on the GPU"
timeout 150 $PY benchmarks/bench_jaccard.py --device cuda --dim 2048 --per-id 86 --sizes 34167 --methods modality \
    2>&1 | tee "$OUT/jaccard_cuda.txt" | tail -12

step "3. trainer throughput"
timeout 90 $PY benchmarks/bench_train.py --device cuda --models paper --workers 0 8 --batch 64 --iters 5 --images 512 \
    2>&1 | tee "$OUT/throughput_fp32.txt" | tail -6
timeout 90 $PY benchmarks/bench_train.py --device cuda --models paper --workers 0 8 --batch 64 --iters 5 --images 512 --amp \
    2>&1 | tee "$OUT/throughput_amp.txt" | tail -6

step "4. paper preset, a few iterations, then xmrank test"
for amp in no-amp amp; do
  rm -rf "/tmp/run_$amp"
  timeout 60 $PY -m xmrank.cli.main train --dataset synthetic --root /tmp/synthetic --output "/tmp/run_$amp" \
      --preset paper --pretrained none --device cuda --$amp --num-workers 8 --no-progress \
      --set epochs_stage1=1 --set epochs_stage2=1 --set iters=5 --set eval_trials=2 \
      2>&1 | tee "$OUT/train_$amp.txt" | tail -4
done
timeout 45 $PY -m xmrank.cli.main test --checkpoint /tmp/run_amp/model.pt --dataset sysu --root /tmp/synthetic \
    --trials 2 --rerank --device cuda --json "$OUT/test.json" 2>&1 | tee "$OUT/test.txt" | tail -8
echo "logs in $OUT"
