#!/usr/bin/env bash
# Installs what the tests need, then runs them:
#   scripts/test.sh                      every test: `cargo test --release`, then the page every
#                                        browser opens (WebGL2 + CPU) built and trained in
#                                        headless Chromium, and the WebGPU page's code checked
#   scripts/test.sh --web-wgpu           the same, with the WebGPU page built and trained too
#   scripts/test.sh --no-web             the cargo tests only
#   scripts/test.sh [cargo test args]    those cargo tests only (add --web for the page too)
# On Debian and Ubuntu the missing system packages are installed with apt-get (as root, or
# through sudo): a Vulkan driver (Mesa's software lavapipe serves when there is no GPU), Xvfb
# and the X libraries the viewer's window test loads, the full Fashion-MNIST, python3 with numpy
# (a run written by python/clamp_follow.py is filmed), and for the
# browser build Debian's Rust for the web, wasm-ld and Chromium. Elsewhere it names what is
# missing and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

web=$([ $# = 0 ] && echo 1 || echo 0)
web_wgpu=0
cargo_args=()
for arg in "$@"; do
  case "$arg" in
    --web) web=1 ;;
    --web-wgpu) web=1; web_wgpu=1 ;;
    --no-web) web=0 ;;
    *) cargo_args+=("$arg") ;;
  esac
done

packages="mesa-vulkan-drivers libvulkan1 xvfb xauth libxkbcommon-x11-0 libxcursor1 libxi6 libxrandr2 dataset-fashion-mnist python3 python3-numpy"
if [ "$web" = 1 ]; then
  packages="$packages rustc-web cargo-web rust-web-src lld chromium libgl1-mesa-dri libegl-mesa0"
fi

if command -v dpkg >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  missing=""
  for package in $packages; do
    dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
  done
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
      as_root=""
    elif command -v sudo >/dev/null 2>&1; then
      as_root="sudo"
    else
      echo "scripts/test.sh: the tests need these Debian packages:$missing" >&2
      echo "  install them as root: apt-get install$missing" >&2
      exit 1
    fi
    echo "scripts/test.sh: installing with apt-get:$missing"
    $as_root apt-get update -qq
    $as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
else
  problems=""
  command -v xvfb-run >/dev/null 2>&1 || problems="$problems\n  - xvfb-run (Xvfb), for the viewer's window test"
  icds=$(ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json 2>/dev/null || true)
  [ -n "$icds" ] || problems="$problems\n  - a Vulkan driver (your GPU's, or Mesa's lavapipe), for the renderer and the WGPU tests"
  if [ -n "$problems" ]; then
    printf 'scripts/test.sh: this is not a Debian or Ubuntu system, and the tests need:%b\n' "$problems" >&2
    echo "  install them with your package manager (on Debian: $packages), then run this again" >&2
    exit 1
  fi
fi

cargo test --release "${cargo_args[@]}"

if [ "$web" = 1 ]; then
  # The viewer in a browser: built for wasm32 and opened in headless Chromium, where it must
  # train with a falling loss, no error, and (the CPU page, for 20 s) floors on its frames/s,
  # steps/s and class purity (scripts/test-web.sh). The WebGL2 + CPU page is the one every browser opens;
  # the WebGPU page shares all but its backend with it and the desktop app, so by default its
  # code is only type-checked (a second full build would take 10 to 20 minutes more).
  shot="${TMPDIR:-/tmp}/clamp-web-test.png"
  if [ "$web_wgpu" = 1 ]; then
    scripts/build-web.sh both
    CLAMP_WEB_PATHS="cpu wgpu" scripts/test-web.sh "$shot"
  else
    scripts/build-web.sh cpu
    CLAMP_WEB_PATHS=cpu CLAMP_WEB_SECONDS=${CLAMP_WEB_SECONDS:-20} scripts/test-web.sh "$shot"
    scripts/build-web.sh check-wgpu
  fi
  echo "scripts/test.sh: the page trained in a browser (screenshots: ${shot%.png}-*.png)"
fi
