#!/usr/bin/env bash
# The GPU-only checks, run as one script on a lent GPU machine (device tool), from the repo root:
# the CUDA SSIM test, the DSSIM bench on CUDA, and bf16 end-to-end evaluation of a world model on CUDA vs CPU.
# Missing packages travel as wheels in .whl/ (see the device tool's README); output lands in $OUT.
set -u
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
. bench/device_env.sh
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
echo "== CUDA SSIM test"
python3 -m pytest -q -p no:cacheprovider tests/curate/test_dedup.py -k cuda 2>&1 | tail -3
echo "== DSSIM bench on CUDA"
python3 bench/dedup.py --skip-knn --device cuda 2>&1 | tail -4 | tee "$OUT/dedup_cuda.txt"
echo "== bf16 end-to-end eval: a world model on CUDA (bf16 autocast) vs CPU (float32)"
python3 - <<'PY' 2>&1 | tee "$OUT/bf16_eval.txt"
import time, numpy as np
from shiftlab.workspace import Workspace
from shiftlab.world import build_world
from shiftlab.world.zoo import train_zoo
from shiftlab.predict.engine import predict
ws = Workspace.resolve("/tmp/gpu-ws")
world = build_world(ws, progress=False)
train_zoo(world.manifest("train"), ws, names=["cnn-wide"], progress=False)
test = world.manifest("pool")
import shutil
out = {}
for dev in ("cpu", "cuda"):
    shutil.rmtree(ws.predictions, ignore_errors=True)  # the store's key has no device: start each run empty
    t = time.perf_counter()
    [p] = predict(test, ["world:cnn-wide"], workspace=ws, device=dev, progress=False)
    out[dev] = (p.values.astype(np.float32), time.perf_counter() - t)
a, b = out["cpu"][0], out["cuda"][0]
y = np.asarray(test.labels)
print(f"pool images: {len(y)}; top-1 cpu {np.mean(a.argmax(1) == y):.4f}, cuda bf16 {np.mean(b.argmax(1) == y):.4f}; "
      f"argmax agreement {np.mean(a.argmax(1) == b.argmax(1)):.4f}; max |logit diff| {np.abs(a - b).max():.3f}; "
      f"seconds cpu {out['cpu'][1]:.1f}, cuda {out['cuda'][1]:.1f}")
PY
