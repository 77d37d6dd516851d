#!/usr/bin/env bash
# The GPU check: what clamp does on this machine's GPU, as one table (no display needed).
#
#   scripts/gpu-check.sh
#
# Builds the release binary, the training benchmark and the training tests, then measures:
# the adapter; one training step on WGPU against the CPU backend (loss and gradients); the
# training step's views/s on WGPU (batch 256 x 2 views and 128 x 4); `clamp record` frames/s
# with 1,000 and 10,000 spheres while training; the default `clamp train` on WGPU (time and
# linear probe). It stops early, saying what to install, when the GPU has no Vulkan driver.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clamp-target}"
export CARGO_TERM_COLOR=never
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "building (release)..." >&2
cargo build --release --bin clamp --example train_bench >&2
cargo test --release --test train --no-run >&2
bin="$CARGO_TARGET_DIR/release/clamp"
bench="$CARGO_TARGET_DIR/release/examples/train_bench"

adapter=$("$bench" --adapter-only 2>/dev/null | sed -n 's/^adapter: //p')
if [[ -z $adapter || $adapter == none* ]]; then
    echo "gpu-check: no Vulkan adapter at all: install the GPU's Vulkan driver (NVIDIA: the" >&2
    echo "  driver's Vulkan ICD, Debian package nvidia-vulkan-icd, Ubuntu libnvidia-gl-VERSION;" >&2
    echo "  AMD and Intel: mesa-vulkan-drivers) and the loader (libvulkan1)" >&2
    exit 1
fi
if [[ $adapter == *software* ]]; then
    echo "gpu-check: the only Vulkan adapter is a software rasterizer ($adapter): the GPU has no" >&2
    echo "  Vulkan driver here (NVIDIA: nvidia-vulkan-icd on Debian, libnvidia-gl-VERSION on" >&2
    echo "  Ubuntu). Nothing to measure on a GPU." >&2
    exit 1
fi

echo "| what | result |"
echo "| --- | --- |"
echo "| adapter | $adapter |"

# One step on WGPU against the CPU backend, from the same weights and batch.
agreement=$(cargo test --release --test train wgpu_and_cpu_agree_on_a_training_step -- --nocapture 2>&1 || true)
loss=$(grep -o 'cpu loss [^,]*, wgpu loss [^,]*, rel diff [^ ]*' <<<"$agreement" | head -n 1)
grads=$(grep -o 'gradients: .*' <<<"$agreement" | head -n 1)
verdict=$(grep -q 'test result: ok' <<<"$agreement" && echo "agree (within 1e-3)" || echo "DISAGREE (see cargo test --test train)")
echo "| one step, WGPU vs CPU | $verdict; $loss; $grads |"

for shape in "256 2" "128 4"; do
    set -- $shape
    row=$("$bench" 50 16 "$1" "$2" --wgpu-only | grep '^| training step, wgpu' || echo "| - | failed | - |")
    views=$(awk -F'|' '{gsub(/ /, "", $4); print $4}' <<<"$row")
    first=$(awk -F'|' '{gsub(/ /, "", $3); print $3}' <<<"$row")
    echo "| training step on WGPU, batch $1 x $2 views | $views views/s (first step $first s) |"
done

for spheres in 1000 10000; do
    json=$("$bin" record --backend wgpu --spheres "$spheres" --frames 120 --steps-per-frame 1 \
        --size 960x540 --out "$work/frames-$spheres/" 2>/dev/null || echo '{}')
    fps=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(f"{d[\"frames\"]/d[\"seconds\"]:.1f}" if d.get("seconds") else "failed")' "$json")
    echo "| clamp record, $spheres spheres, one training step a frame | $fps frames/s |"
done

started=$(date +%s)
summary=$("$bin" train --backend wgpu --out "$work/run" 2>/dev/null | tail -n 1 || echo '{}')
elapsed=$(( $(date +%s) - started ))
probe=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(f"linear probe {d[\"linear_acc\"]:.4f}, kNN {d[\"knn_acc\"]:.4f}" if "linear_acc" in d else "failed")' "$summary")
echo "| clamp train (defaults) on WGPU | $elapsed s; $probe |"
