#!/usr/bin/env bash
# One prepared run on a GPU machine with PyTorch's bundled LibTorch 2.x: configure against it, build,
# run the whole test suite (the [cuda] tests included), a short CUDA training run, the GPU training
# speed against Python, data-parallel scaling (CPU processes, 2 processes on the GPU) and the
# latency tables' accuracy on the GPU.
# Expects the Fashion-MNIST .gz files in .fmnist/ (carried) when the machine lacks the Debian package.
# Writes logs under $OUT (or ./gpu-out).
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
if [[ ! -d /usr/share/datasets/fashion-mnist && -d .fmnist ]]; then
  mkdir -p /usr/share/datasets/fashion-mnist && cp .fmnist/*.gz /usr/share/datasets/fashion-mnist/
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda)' >> "$OUT/gpu.txt"
{ time cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX" -DNAS_ONNX=OFF -DNAS_DIST=AUTO ; } > "$OUT/configure.log" 2>&1 || { tail -40 "$OUT/configure.log"; exit 1; }
{ time cmake --build build-gpu -j16 ; } > "$OUT/build.log" 2>&1 || { grep -E 'error|Error' "$OUT/build.log" | head -60; exit 1; }
grep -c warning "$OUT/build.log" | sed 's/^/build warnings: /'
ctest --test-dir build-gpu --output-on-failure -j4 > "$OUT/ctest.log" 2>&1
rc=$?
tail -25 "$OUT/ctest.log"
./build-gpu/nas-train-supernet --space configs/spaces/fmnist-mbconv.yaml --train configs/train/fmnist.yaml \
  --out "$OUT/run" --device cuda --stop-after-steps 30 > "$OUT/train-cuda.log" 2>&1
tail -3 "$OUT/train-cuda.log"
rm -f "$OUT/run/supernet.ckpt"
# Sandwich-step speed on the GPU at batch 256: layouts x precisions, against the Python reference
# (the same dynamic supernet in PyTorch, scripts/bench/py_reference.py --sandwich --device cuda).
rate() { python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])][2:]; print("%.0f" % (sum(x["images_per_s"] for x in r)/max(1,len(r))))' "$1"; }
sed -e 's/^log_every_steps: .*/log_every_steps: 5/' configs/train/fmnist.yaml > "$OUT/train-speed.yaml"
{
  for cl in 1 0; do for prec in fp32 bf16; do
    NAS_CHANNELS_LAST=$cl timeout 120 ./build-gpu/nas-train-supernet --space configs/spaces/fmnist-mbconv.yaml \
      --train "$OUT/train-speed.yaml" --out "$OUT/speed-$cl-$prec" --device cuda --precision $prec --batch-size 256 \
      --stop-after-steps 40 -q > /dev/null && echo "C++ sandwich channels_last=$cl $prec: $(rate "$OUT/speed-$cl-$prec/metrics.jsonl") images/s"
    rm -f "$OUT/speed-$cl-$prec/supernet.ckpt"
  done; done
  echo "Python sandwich fp32: $(timeout 120 python3 scripts/bench/py_reference.py --space configs/spaces/fmnist-mbconv.yaml \
    --sandwich --device cuda --batch 256 --steps 40) images/s"
} 2>&1 | tee "$OUT/speed.txt"
# Data parallel (issue 7): CPU scaling 1 -> 8 processes of 1 thread (Gloo), and 2 processes on
# the one GPU (Gloo carries the CUDA tensors: NCCL refuses two ranks on one device).
BUILD=build-gpu PROCS=8 STEPS=40 timeout 400 scripts/bench/distributed.sh > "$OUT/distributed.txt" 2>&1
tail -10 "$OUT/distributed.txt"
port=$((29700 + RANDOM % 2000))
for r in 1 0; do
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=2 RANK=$r LOCAL_RANK=0 timeout 120 ./build-gpu/nas-train-supernet \
    --space configs/spaces/fmnist-mbconv.yaml --train "$OUT/train-speed.yaml" --out "$OUT/ddp-cuda" --device cuda \
    --dist-backend gloo --batch-size 256 --stop-after-steps 20 --dist-timeout 60 > "$OUT/ddp-cuda-$r.log" 2>&1 &
done
wait
tail -2 "$OUT/ddp-cuda-0.log" "$OUT/ddp-cuda-1.log"
echo "2 processes on one GPU (Gloo): $(rate "$OUT/ddp-cuda/metrics.jsonl") images/s"
rm -f "$OUT/ddp-cuda/supernet.ckpt"
# Latency tables on the GPU (issue 5): table and learned model against 100 held-out children, at
# batch 1 and 64 (shorter than the CPU run: 50 model children, 2 rounds).
cmake --build build-gpu -j16 --target nas-bench-latency > /dev/null 2>&1
BUILD=build-gpu DEVICE=cuda MODEL_ARCHS=50 ROUNDS=2 timeout 300 scripts/bench/latency_accuracy.sh "$OUT/latency" \
  > "$OUT/latency.txt" 2> "$OUT/latency.err"
tail -4 "$OUT/latency.txt"
exit $rc
