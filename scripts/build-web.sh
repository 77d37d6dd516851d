#!/usr/bin/env bash
# Builds the viewer for browsers into web/dist/: the loader page, two builds of the app and the
# bundled Fashion-MNIST test split they train on.
#
#   scripts/build-web.sh            # both builds; then: python3 -m http.server -d web/dist 8000
#   scripts/build-web.sh cpu        # only the build every browser opens (WebGL2 + CPU training)
#   scripts/build-web.sh wgpu       # only the WebGPU build
#   scripts/build-web.sh check-wgpu # type-checks the WebGPU build without building it (CI)
#
#   web/dist/index.html             the loader: picks a build at load time (web/index.html)
#   web/dist/present.js             its cheaper last copy of a frame without a GPU (web/present.js)
#   web/dist/cpu/                   WebGL2 drawing, training on the CPU (wasm32 + SIMD128)
#   web/dist/wgpu/                  WebGPU drawing and training
#   each: clamp.js, clamp_bg.wasm, clamp_bg.wasm.gz (what the loader downloads), and
#   worker.js (the CPU page trains in a Web Worker on the same module)
#
# The toolchain: Debian's rustc-web/cargo-web (the wasm32 standard library is rebuilt from
# rust-web-src with -Zbuild-std), wasm-ld from lld, and wasm-bindgen-cli of the lockfile's
# wasm-bindgen version (installed once from crates.io into ~/.cache/clamp-tools).
# Environment: CLAMP_WEB_TARGET (build directory, default ~/.cache/clamp-web-target),
# CLAMP_TOOLS (where wasm-bindgen goes, default ~/.cache/clamp-tools).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
target_dir=${CLAMP_WEB_TARGET:-$HOME/.cache/clamp-web-target}
tools=${CLAMP_TOOLS:-$HOME/.cache/clamp-tools}
dist=$root/web/dist
started=$(date +%s)

say() { printf 'build-web: %s\n' "$*" >&2; }

check=0
case "${1:-both}" in
  both) paths=(cpu wgpu) ;;
  cpu | wgpu) paths=("$1") ;;
  check-wgpu) paths=(wgpu); check=1 ;;
  *) say "usage: scripts/build-web.sh [cpu|wgpu|both|check-wgpu]"; exit 2 ;;
esac

# 1. Debian's Rust for the web, and the linker.
packages=(rustc-web cargo-web rust-web-src lld)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]]; then
    say "installing ${missing[*]} (Debian packages)"
    apt-get install -y -q "${missing[@]}" >/dev/null
  else
    say "needs the Debian packages ${missing[*]}: sudo apt-get install ${missing[*]}"
    exit 1
  fi
fi
web_rustc=/usr/bin/rustc
web_cargo=/usr/bin/cargo
[[ -d /usr/lib/rustlib/src/rust/library ]] || { say "rust-web-src has no library sources under /usr/lib/rustlib/src"; exit 1; }

# Cargo for wasm32 with the standard library rebuilt, and SIMD128 (every browser since 2021)
# for burn's CPU kernels and the GEMM.
web_cargo_run() {
  env -u RUSTUP_TOOLCHAIN -u CARGO -u RUSTC_WRAPPER \
    PATH=/usr/bin:/bin RUSTC=$web_rustc RUSTC_BOOTSTRAP=1 \
    CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} CARGO_TARGET_DIR=$target_dir \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld \
    RUSTFLAGS="-C target-feature=+simd128" \
    "$web_cargo" "$1" --profile web --locked --target wasm32-unknown-unknown \
    -Zbuild-std=std,panic_abort --bin clamp --no-default-features --features "web-$2"
}

if ((check)); then
  say "checking the wgpu page's code for wasm32-unknown-unknown (no build)"
  web_cargo_run check wgpu
  say "done in $(($(date +%s) - started)) s"
  exit 0
fi

# 2. wasm-bindgen-cli, the version the lockfile's wasm-bindgen speaks.
version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
bindgen=$tools/bin/wasm-bindgen
if ! [[ -x $bindgen ]] || [[ $("$bindgen" --version | awk '{print $2}') != "$version" ]]; then
  say "installing wasm-bindgen-cli $version into $tools (once; a few minutes)"
  # (Not --locked: its lockfile pins a webpki-roots that the registry may no longer serve.)
  cargo install -q wasm-bindgen-cli --version "=$version" --root "$tools"
fi

# 3. The loader and the data, shared by both builds.
mkdir -p "$dist"
cp web/index.html web/present.js "$dist/"
cp assets/fashion-mnist/t10k-images-idx3-ubyte.gz assets/fashion-mnist/t10k-labels-idx1-ubyte.gz \
  "$dist/"
cp assets/fashion-mnist/LICENSE "$dist/fashion-mnist-LICENSE"

# 4. Each build: the app for wasm32 (the `clamp` binary's wasm entry point is the page's), its
# JavaScript bindings, and the gzipped module the loader fetches.
sizes=()
for path in "${paths[@]}"; do
  say "building the $path page for wasm32-unknown-unknown into $target_dir"
  # (The profile `web`, Cargo.toml, links the whole program at once.)
  web_cargo_run build "$path"
  out=$dist/$path
  rm -rf "$out"
  mkdir -p "$out"
  # (Without the name section: half the file, only stack traces lose their function names.)
  "$bindgen" --target web --no-typescript --remove-name-section --out-dir "$out" --out-name clamp \
    "$target_dir/wasm32-unknown-unknown/web/clamp.wasm"
  cp web/worker.js "$out/"
  gzip -9 -k -n "$out/clamp_bg.wasm"
  wasm_bytes=$(stat -c %s "$out/clamp_bg.wasm")
  gzip_bytes=$(stat -c %s "$out/clamp_bg.wasm.gz")
  sizes+=("$(awk -v p="$path" -v w="$wasm_bytes" -v g="$gzip_bytes" \
    'BEGIN { printf "web/dist/%s/clamp_bg.wasm: %.1f MB (%.1f MB gzipped, %d bytes)", p, w / 1e6, g / 1e6, g }')")
done
say "done in $(($(date +%s) - started)) s"
printf '%s\n' "${sizes[@]}"
