#!/usr/bin/env bash
# The GPU check: what clamp does on this machine's GPU, as one table (no display needed).
#
#   scripts/gpu-check.sh               build here (cargo), then measure
#   scripts/gpu-check.sh --pack [DIR]  build here and put what a measurement needs into DIR
#                                      (default .gpu): the stripped binaries, the 60k training
#                                      split and the Vulkan loader, compressed, for a GPU machine
#                                      with no Rust toolchain and no network
#   scripts/gpu-check.sh --from DIR    measure with such a pack, building nothing
#   --quick                            small sizes and a software adapter allowed: every row in
#                                      a few minutes on any machine, to check the check itself
#
# The table: the adapter; one training step on WGPU against the CPU backend (loss and every
# gradient entry); the training step's views/s on WGPU (batch 256, 512 and 1024 x 2 views, and
# 128 x 4); CubeCL's kernel profile of the step (the kernels with the largest shares);
# `clamp record` frames/s with 1,000 and 10,000 spheres while training, and where a frame's
# time goes; the default `clamp train` on WGPU (time and linear probe). The table goes to
# stdout, progress to stderr.
# It stops early, saying what to install, when the GPU has no Vulkan driver.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clamp-target}"
export CARGO_TERM_COLOR=never

mode=build pack=.gpu quick=0
while (($#)); do
    case $1 in
    --pack)
        mode=pack
        if [[ ${2:-} && $2 != --* ]]; then pack=$2 && shift; fi
        ;;
    --from)
        mode=from
        pack=${2:?"--from needs the pack's folder (made by scripts/gpu-check.sh --pack)"}
        shift
        ;;
    --quick) quick=1 ;;
    -h | --help)
        sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "gpu-check: unknown argument '$1' (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { echo "gpu-check: $*" >&2; }

build() {
    say "building (release)..."
    cargo build --release --bin clamp --example train_bench >&2
    bin="$CARGO_TARGET_DIR/release/clamp"
    bench="$CARGO_TARGET_DIR/release/examples/train_bench"
}

# The full Fashion-MNIST: --data's chain (CLAMP_DATA, then Debian's package).
full_data_dir() {
    local dir
    for dir in "${CLAMP_DATA:-}" /usr/share/datasets/fashion-mnist; do
        if [[ -n $dir && -f $dir/train-images-idx3-ubyte.gz && -f $dir/train-labels-idx1-ubyte.gz ]]; then
            echo "$dir"
            return
        fi
    done
    say "the full Fashion-MNIST is not here: install Debian's dataset-fashion-mnist, or set"
    say "  CLAMP_DATA to a folder with train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz"
    exit 1
}

if [[ $mode == pack ]]; then
    build
    data=$(full_data_dir)
    rm -rf "$pack" && mkdir -p "$pack/data" "$pack/debs"
    say "compressing the binaries (xz; a minute or two)..."
    for b in "$bin" "$bench"; do
        strip -o "$work/$(basename "$b")" "$b"
        xz -9 -T0 -c "$work/$(basename "$b")" >"$pack/$(basename "$b").xz"
    done
    # Raw IDX under xz is smaller than the gzip the package ships.
    gzip -dc "$data/train-images-idx3-ubyte.gz" | xz -9 -T0 >"$pack/data/train-images-idx3-ubyte.xz"
    cp "$data/train-labels-idx1-ubyte.gz" "$pack/data/"
    # The Vulkan loader, for a machine whose image has the GPU's driver but not the loader, and
    # glvnd's dispatch libraries, which NVIDIA's Vulkan driver (libGLX_nvidia) links against.
    say "downloading the Vulkan loader and glvnd (libvulkan1 libglvnd0 libglx0 libegl1)..."
    lists=$work/apt-lists
    mkdir -p "$lists/partial"
    apt_opts=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
    if apt-get "${apt_opts[@]}" update >/dev/null 2>&1 &&
        (cd "$pack/debs" && apt-get "${apt_opts[@]}" download libvulkan1 libglvnd0 libglx0 libegl1 >/dev/null 2>&1); then
        :
    else
        say "could not download the loader: the pack relies on the GPU machine's own libraries"
    fi
    git describe --always --dirty >"$pack/commit" 2>/dev/null || true
    tracked=$(git ls-files -z | du -cb --files0-from=- | tail -n 1 | cut -f 1)
    packed=$(du -sb "$pack" | cut -f 1)
    say "$(python3 -c 'import sys; p, t = int(sys.argv[2]), int(sys.argv[3]); print(f"packed {sys.argv[1]}: {p / 2**20:.1f} MiB; with the tracked files {(p + t) / 2**20:.1f} MiB")' \
        "$pack" "$packed" "$tracked")"
    say "on the GPU machine, in the repository root: scripts/gpu-check.sh --from $pack"
    exit 0
fi

if [[ $mode == from ]]; then
    [[ -f $pack/clamp.xz && -f $pack/train_bench.xz ]] ||
        { say "$pack holds no pack (clamp.xz, train_bench.xz): make one with scripts/gpu-check.sh --pack $pack"; exit 2; }
    unxz_to() { python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; }
    say "unpacking $pack (built from commit $(cat "$pack/commit" 2>/dev/null || echo unknown))..."
    mkdir -p "$work/bin" "$work/data"
    for b in clamp train_bench; do
        unxz_to "$pack/$b.xz" "$work/bin/$b" && chmod +x "$work/bin/$b"
    done
    bin=$work/bin/clamp bench=$work/bin/train_bench
    unxz_to "$pack/data/train-images-idx3-ubyte.xz" "$work/data/train-images-idx3-ubyte"
    cp "$pack/data/train-labels-idx1-ubyte.gz" assets/fashion-mnist/t10k-* "$work/data/"
    export CLAMP_DATA=$work/data
    # The pack's loader and glvnd when the machine lacks one of them (an NVIDIA container image
    # often has the driver but neither): unpacked beside the run, the machine's own libraries
    # are not touched.
    missing=0
    for lib in libvulkan.so.1 libGLdispatch.so.0 libGLX.so.0; do
        ldconfig -p 2>/dev/null | grep -q "$lib " || missing=1
    done
    if ((missing)); then
        for deb in "$pack"/debs/*.deb; do
            [[ -f $deb ]] && dpkg -x "$deb" "$work/vulkan"
        done
        export LD_LIBRARY_PATH="$work/vulkan/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    # A driver mounted outside the loader's search path (some container images).
    for nvidia in /usr/local/nvidia; do
        if [[ -z ${VK_DRIVER_FILES:-} && -f $nvidia/share/vulkan/icd.d/nvidia_icd.json ]] &&
            ! ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
            export VK_DRIVER_FILES=$nvidia/share/vulkan/icd.d/nvidia_icd.json
            for lib in "$nvidia/lib64" "$nvidia/lib"; do
                [[ -d $lib ]] && export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            done
        fi
    done
fi

[[ $mode == build ]] && build

adapter=$("$bench" --adapter-only 2>"$work/adapter.log" | sed -n 's/^adapter: //p')
if [[ -z $adapter || $adapter == none* ]]; then
    say "the adapter probe said: $(grep -v -e '^$' "$work/adapter.log" | tail -n 3 | tr '\n' ' ')"
    say "no Vulkan adapter at all: install the GPU's Vulkan driver (NVIDIA: the driver's Vulkan"
    say "  ICD, Debian package nvidia-vulkan-icd, Ubuntu libnvidia-gl-VERSION; AMD and Intel:"
    say "  mesa-vulkan-drivers) and the loader (libvulkan1)"
    exit 1
fi
if [[ $adapter == *software* && $quick == 0 ]]; then
    say "the only Vulkan adapter is a software rasterizer ($adapter): the GPU has no Vulkan"
    say "  driver here (NVIDIA: nvidia-vulkan-icd on Debian, libnvidia-gl-VERSION on Ubuntu)."
    say "  Nothing to measure on a GPU (--quick runs the rows anyway, at small sizes)."
    exit 1
fi

if ((quick)); then
    agree_shape=(1) agree_label="the default model, batch 256 x 2" bench_shapes=("64 2" "32 4") bench_steps=3
    sphere_counts=(200 1000) record_frames=10
    cat >"$work/train.toml" <<'EOF'
steps = 20
batch = 64
probe_train_images = 1000
probe_test_images = 500
EOF
    train_args=(--config "$work/train.toml") train_label="20 steps of batch 64, probe on 1,000 images"
    sizes="quick sizes: "
else
    agree_shape=(1) agree_label="the default model, batch 256 x 2" bench_shapes=("256 2" "512 2" "1024 2" "128 4") bench_steps=50
    sphere_counts=(1000 10000) record_frames=120
    train_args=() train_label="defaults"
    sizes=""
fi
rows=$((1 + ${#bench_shapes[@]} + 1 + ${#sphere_counts[@]} + 1))
row=0
progress() { row=$((row + 1)) && say "[$row/$rows] $*"; }
# Why a row failed: the last line its command wrote to stderr.
why() { grep -v -e '^$' -e XDG_RUNTIME_DIR "$1" | tail -n 1 | tr '|' '/'; }

echo "| what | result |"
echo "| --- | --- |"
echo "| adapter | $adapter |"

progress "one step on WGPU against the CPU backend"
agreement=$("$bench" "${agree_shape[@]}" --agreement 2>"$work/agreement.log" | sed -n 's/^agreement: //p')
echo "| ${sizes}one step, WGPU vs CPU ($agree_label) | ${agreement:-failed: $(why "$work/agreement.log")} |"

for shape in "${bench_shapes[@]}"; do
    set -- $shape
    progress "training step on WGPU, batch $1 x $2 views"
    line=$("$bench" "$bench_steps" 16 "$1" "$2" --wgpu-only 2>"$work/bench.log" | grep '^| training step, wgpu' || true)
    first=$(awk -F'|' '{gsub(/ /, "", $3); print $3}' <<<"$line")
    views=$(awk -F'|' '{gsub(/ /, "", $4); print $4}' <<<"$line")
    [[ -n $views ]] && views="$views views/s (first step $first s)" || views="failed: $(why "$work/bench.log")"
    echo "| ${sizes}training step on WGPU, batch $1 x $2 views | $views |"
done

# CubeCL times every kernel of a few steps on the GPU, one at a time (its profiling mode);
# the row names the kernels that take most of the step.
progress "kernel profile of the training step"
first_shape=(${bench_shapes[0]})
CUBECL_DEBUG_LOG="$work/profile.log" CUBECL_DEBUG_OPTION=profile \
    "$bench" 8 16 "${first_shape[0]}" "${first_shape[1]}" --wgpu-only >/dev/null 2>"$work/profile.err" || true
kernels=$(python3 - "$work/profile.log" <<'PY' 2>/dev/null || echo failed
import collections, re, sys
unit = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}
time, count = collections.Counter(), collections.Counter()
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"\|\s*([\d.]+)(ns|µs|us|ms|s)\s*\|\s*(\S+)", line)
    if m:
        time[m.group(3)] += float(m.group(1)) * unit[m.group(2)]
        count[m.group(3)] += 1
total = sum(time.values())
print("; ".join(f"{k} {100 * v / total:.0f}% ({count[k]} launches)" for k, v in time.most_common(4))
      + f"; {sum(count.values())} launches, {total:.0f} ms of GPU time in 9 steps")
PY
)
[[ $kernels == failed ]] && kernels="failed: $(why "$work/profile.err")"
echo "| ${sizes}kernel profile, batch ${first_shape[0]} x ${first_shape[1]} (largest shares) | $kernels |"

for spheres in "${sphere_counts[@]}"; do
    progress "clamp record, $spheres spheres"
    json=$("$bin" record --backend wgpu --spheres "$spheres" --frames "$record_frames" \
        --steps-per-frame 1 --size 960x540 --out "$work/frames-$spheres/" 2>"$work/record.log" || echo '{}')
    fps=$(python3 - "$json" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
s = d.get("stage_seconds")
if not s:
    print("failed")
else:
    n = d["frames"]
    ms = lambda k: 1e3 * s[k] / n
    print(f"{d['frames_per_second']:.1f} frames/s; a frame: training {ms('training'):.1f} ms, "
          f"embedding {ms('embedding'):.1f} ms, drawing and read-back {ms('drawing'):.1f} ms, "
          f"PNG {ms('writing'):.1f} ms beside them ({ms('waiting_for_writing'):.1f} ms waited)")
PY
)
    [[ $fps == failed ]] && fps="failed: $(why "$work/record.log")"
    echo "| ${sizes}clamp record, $spheres spheres at 960x540, one training step a frame | $fps |"
done

progress "clamp train ($train_label; minutes)"
started=$(date +%s)
summary=$("$bin" train --backend wgpu "${train_args[@]}" --out "$work/run" 2>"$work/train.log" | tail -n 1 || echo '{}')
elapsed=$(($(date +%s) - started))
probe=$(python3 - "$summary" <<'PY' 2>/dev/null || echo failed
import json, sys
d = json.loads(sys.argv[1])
print(f"linear probe {d['linear_acc']:.4f}, kNN {d['knn_acc']:.4f}" if "linear_acc" in d else "failed")
PY
)
[[ $probe == failed ]] && probe="failed: $(why "$work/train.log")"
echo "| ${sizes}clamp train ($train_label) on WGPU | $elapsed s; $probe |"
