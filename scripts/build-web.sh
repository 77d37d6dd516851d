#!/usr/bin/env bash
# Builds the viewer for a browser (WebAssembly + WebGPU) into web/dist/: index.html, clamp.js,
# clamp_bg.wasm and the bundled Fashion-MNIST test split the page trains on.
#
#   scripts/build-web.sh                 # then: python3 -m http.server -d web/dist 8000
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

# 2. wasm-bindgen-cli, the version the lockfile's wasm-bindgen speaks.
version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
bindgen=$tools/bin/wasm-bindgen
if ! [[ -x $bindgen ]] || [[ $("$bindgen" --version | awk '{print $2}') != "$version" ]]; then
  say "installing wasm-bindgen-cli $version into $tools (once; a few minutes)"
  # (Not --locked: its lockfile pins a webpki-roots that the registry may no longer serve.)
  cargo install -q wasm-bindgen-cli --version "=$version" --root "$tools"
fi

# 3. The app for wasm32 (the `clamp` binary's wasm entry point is the page's).
say "building for wasm32-unknown-unknown into $target_dir"
env -u RUSTUP_TOOLCHAIN -u CARGO -u RUSTC_WRAPPER \
  PATH=/usr/bin:/bin RUSTC=$web_rustc RUSTC_BOOTSTRAP=1 \
  CARGO_HOME=${CARGO_HOME:-$HOME/.cargo} CARGO_TARGET_DIR=$target_dir \
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld \
  "$web_cargo" build --release --locked --target wasm32-unknown-unknown \
  -Zbuild-std=std,panic_abort --bin clamp

# 4. JavaScript bindings, the page and its data.
rm -rf "$dist"
mkdir -p "$dist"
# (Without the name section: half the file, only stack traces lose their function names.)
"$bindgen" --target web --no-typescript --remove-name-section --out-dir "$dist" --out-name clamp \
  "$target_dir/wasm32-unknown-unknown/release/clamp.wasm"
cp web/index.html "$dist/"
cp assets/fashion-mnist/t10k-images-idx3-ubyte.gz assets/fashion-mnist/t10k-labels-idx1-ubyte.gz \
  "$dist/"
cp assets/fashion-mnist/LICENSE "$dist/fashion-mnist-LICENSE"

wasm_bytes=$(stat -c %s "$dist/clamp_bg.wasm")
gzip_bytes=$(gzip -9 -c "$dist/clamp_bg.wasm" | wc -c)
say "done in $(($(date +%s) - started)) s"
awk -v w="$wasm_bytes" -v g="$gzip_bytes" 'BEGIN { printf "web/dist/clamp_bg.wasm: %.1f MB (%.1f MB gzipped)\n", w / 1e6, g / 1e6 }'
