#!/usr/bin/env bash
# The S4 checks that need a quiet machine, run as one script on a lent GPU machine (device tool), from the repo root:
#  1. the world's robust-features demo section on 2 pinned cores (first run and cached rerun, the protocol table);
#  2. the MNIST study on real MNIST (data/mnist carried), full size on CUDA;
#  3. the same study sized for 2 CPU cores (pinned: 2,000 reconstructions, 2 epochs), with its wall time;
#  4. bench/robust_features.py on 2 pinned cores.
# Missing packages travel as wheels in .whl/ (see the device tool's README); output lands in $OUT.
set -u
OUT=${OUT:-/tmp/robust-out}; mkdir -p "$OUT"
. bench/device_env.sh
export PYTHONUNBUFFERED=1 SHIFTLAB_QUIET=1
MNIST='
import sys, time, torch
from shiftlab.workspace import Workspace
from shiftlab.analyze.robustfeatures.mnist import MnistSettings, beside_published, mnist_study
from shiftlab.world.robust_section import mnist_data
device, n_recon, ep, t2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if device == "cpu":
    torch.set_num_threads(2)
ws = Workspace.resolve(f"/tmp/ws-mnist-{device}")
t0 = time.perf_counter()
train, test, ptr, pte, source = mnist_data(ws)
print("data", round(time.perf_counter() - t0, 1), "s:", source, len(train), len(test))
r = mnist_study(train, test, ptr, pte, ws.root / "robustfeatures" / "mnist", progress=False, source=source,
                settings=MnistSettings(std_epochs=ep, wok_epochs=ep, n_recon=n_recon, t2_epochs=t2, device=device))
import pandas as pd
pd.set_option("display.width", 200); pd.set_option("display.max_columns", 20)
print(beside_published(r.table1, "table1").round(3).to_string(index=False))
print(beside_published(r.table2, "table2").round(3).to_string(index=False))
print("settings", r.settings); print("seconds", r.seconds)
'
nvidia-smi --query-gpu=name --format=csv,noheader
[ "${RUN_GPU:-1}" = 1 ] && ( python3 -c "$MNIST" cuda 8000 10 8 > "$OUT/mnist_cuda.txt" 2>&1;
  cp /tmp/ws-mnist-cuda/robustfeatures/mnist/results.json "$OUT/results_cuda.json";
  cp /tmp/ws-mnist-cuda/robustfeatures/mnist/grid.npz "$OUT/grid_cuda.npz" ) &
[ "${RUN_CPU:-1}" = 1 ] && ( OMP_NUM_THREADS=2 timeout 540 taskset -c 2,3 python3 -c "$MNIST" cpu "${CPU_RECON:-2000}" 2 4 > "$OUT/mnist_cpu.txt" 2>&1;
  cp /tmp/ws-mnist-cpu/robustfeatures/mnist/results.json "$OUT/results_cpu.json" ) &
OMP_NUM_THREADS=2 taskset -c 0,1 python3 - <<'PY' > "$OUT/world.txt" 2>&1
import time, torch
torch.set_num_threads(2)
import pandas as pd
from shiftlab.world import build_world
from shiftlab.world.zoo import train_zoo
from shiftlab.world.robust_section import protocol, robust_section
pd.set_option("display.width", 200); pd.set_option("display.max_columns", 20)
t = time.perf_counter(); world = build_world("/tmp/ws-world", progress=False)
models = ["mlp", "cnn-medium-s0", "cnn-adv-l2", "cnn-worst-of-k"]
train_zoo(world.manifest("train"), world.workspace, names=models, progress=False)
print("world + 4 zoo models", round(time.perf_counter() - t, 1), "s")
specs = [f"world:{m}" for m in models]
t = time.perf_counter(); robust_section(world, specs); print("section first run", round(time.perf_counter() - t, 1), "s")
t = time.perf_counter(); robust_section(world, specs); print("section rerun", round(time.perf_counter() - t, 2), "s")
table, settings = protocol(world)
print(table.round(3).to_string(index=False)); print(settings)
print(pd.read_json(next((world.workspace.root / "robustfeatures").glob("attacks-*.json"))).round(3).to_string(index=False))
PY
[ "${RUN_BENCH:-1}" = 1 ] && OMP_NUM_THREADS=2 taskset -c 0,1 python3 bench/robust_features.py > "$OUT/bench.txt" 2>&1
wait
tail -n 30 "$OUT/world.txt" "$OUT/bench.txt" "$OUT/mnist_cuda.txt" "$OUT/mnist_cpu.txt"
