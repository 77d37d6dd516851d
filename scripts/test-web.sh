#!/usr/bin/env bash
# Serves web/dist on localhost and opens the page in headless Chromium, once for each build in
# web/dist (scripts/build-web.sh):
#   cpu   WebGPU switched off: the loader must pick the CPU build (WebGL2 drawing);
#   wgpu  ?backend=wgpu, WebGPU on SwiftShader (software Vulkan standing in for a GPU).
# Each prints one JSON line (path, steps, loss_head, loss_tail, fps, steps_per_sec, purity,
# first_step_s, wasm_gz_bytes, ...) and must train CLAMP_WEB_STEPS (20) steps with the mean of
# the last five losses 0.5 below the first five's, without an error on the page (a trap in the
# app, an error logged, a lost drawing context) or in training; the CPU page must also draw 4
# frames/s, train 2 steps/s and reach class purity 0.3 (CLAMP_WEB_SECONDS gives it time). The CPU
# page with two `compare=` must train three runs. Then two cheap checks of the loader: on a software WebGPU adapter it picks the CPU
# build, and with neither WebGPU nor WebGL2 the page says what is missing.
#
#   scripts/build-web.sh && scripts/test-web.sh web-shot.png
#
# Screenshots go to SHOT with the path in the name (web-shot-cpu.png). Installs Debian's
# chromium (as root) and playwright-core (npm, web/package-lock.json) when missing.
# CLAMP_WEB_QUERY adds settings to the address (e.g. "batch=64"), CLAMP_WEB_STEPS waits for
# more steps, CLAMP_WEB_SECONDS runs that long after the first step, CLAMP_WEB_TIMEOUT gives
# up later (300 s), CLAMP_WEB_PATHS chooses the builds to open ("cpu wgpu").
set -euo pipefail
cd "$(dirname "$0")/.."
shot=${1:?usage: scripts/test-web.sh SHOT.png}
[[ -f web/dist/index.html ]] ||
  { echo "test-web: web/dist is not built: run scripts/build-web.sh" >&2; exit 1; }
paths=()
for path in ${CLAMP_WEB_PATHS:-cpu wgpu}; do
  [[ -f web/dist/$path/clamp_bg.wasm.gz ]] && paths+=("$path")
done
((${#paths[@]})) || { echo "test-web: web/dist has no build: run scripts/build-web.sh" >&2; exit 1; }
if ! command -v chromium >/dev/null; then
  if [[ $(id -u) == 0 ]]; then
    apt-get install -y -q chromium >/dev/null
  else
    echo "test-web: needs Chromium: sudo apt-get install chromium" >&2
    exit 1
  fi
fi
[[ -d web/node_modules/playwright-core ]] || (cd web && npm ci --no-audit --no-fund --silent)

# The loader's presentation shader lands on the same byte as sRGB's exact encoding.
node web/check-present.mjs

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 - "$port" <<'PY' &
import functools, http.server, sys
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory="web/dist")
handler.func.extensions_map[".wasm"] = "application/wasm"
handler.func.extensions_map[".js"] = "text/javascript"
handler.func.log_message = lambda *args: None
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
PY
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null && break
  sleep 0.1
done
base="http://127.0.0.1:$port/"
query=${CLAMP_WEB_QUERY:-}
wait_for=(--steps "${CLAMP_WEB_STEPS:-20}" --seconds "${CLAMP_WEB_SECONDS:-0}" --timeout "${CLAMP_WEB_TIMEOUT:-300}")

for path in "${paths[@]}"; do
  case $path in
    cpu) line=$(node web/test-page.mjs "$base?$query" "${shot%.png}-cpu.png" --webgpu off "${wait_for[@]}") ;;
    wgpu) line=$(node web/test-page.mjs "$base?backend=wgpu&$query" "${shot%.png}-wgpu.png" --webgpu swiftshader "${wait_for[@]}") ;;
  esac
  gz_bytes=$(stat -c %s "web/dist/$path/clamp_bg.wasm.gz")
  python3 - "$line" "$path" "$gz_bytes" <<'PY'
import json, sys
stats, path, gz_bytes = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if "message" in stats:
    sys.exit(f"test-web: the {path} page says: {stats['message']}")
stats["wasm_gz_bytes"] = gz_bytes
LOSS_FALL = 0.5
fields = ["path", "steps", "loss_first", "loss_last", "loss_head", "loss_tail", "error", "fps", "steps_per_sec", "purity",
          "purity_best", "first_step_s", "seconds_since_first_step", "step_delay_ms", "wasm_gz_bytes", "probe",
          "background_pixel", "troubles", "first_trouble", "loader"]
print(json.dumps({key: stats.get(key) for key in fields}))
problems = []
if stats.get("path") != path:
    problems.append(f"the page ran the {stats.get('path')} path")
if stats["steps"] < 20:
    problems.append(f"only {stats['steps']} steps")
# The mean of the last five losses well below the first five's: an optimizer that never moves
# stays within the batches' noise of where it started.
head, tail = stats.get("loss_head"), stats.get("loss_tail")
if head is None or tail is None or not tail < head - LOSS_FALL:
    problems.append(f"the loss did not fall by {LOSS_FALL} (mean of five {head} -> {tail})")
if stats.get("error"):
    problems.append(f"training stopped: {stats['error']}")
# The CPU page's floors, far below what it does here (docs/web.md) so that a busy machine
# passes, far above what a stalled loop or a blank picture would give.
if path == "cpu":
    for key, floor in [("fps", 4.0), ("steps_per_sec", 2.0), ("purity_best", 0.3)]:
        value = stats.get(key)
        if value is None or not value >= floor:
            problems.append(f"{key} {value} is below {floor}")
# The scene's background, palette::BACKGROUND = sRGB (0.055, 0.063, 0.082), as bytes: what
# reaches the screen after every copy, the last one included.
expected, pixel = [14, 16, 21], stats.get("background_pixel") or []
if len(pixel) != 3 or max(abs(a - b) for a, b in zip(pixel, expected)) > 2:
    problems.append(f"the picture's background shows as {pixel}, not {expected}")
loader = stats.get("loader") or {}
if path == "cpu" and loader.get("software") and not loader.get("present_shaders_replaced"):
    problems.append("the loader did not replace wgpu's presentation shader (web/present.js)")
if stats.get("troubles"):
    problems.append(f"{stats['troubles']} errors on the page, the first at {stats['first_trouble']}")
if problems:
    sys.exit(f"test-web: {path}: " + "; ".join(problems))
PY
done

# Runs side by side in a page: two `compare=` in the address train three runs (three workers).
if [[ " ${paths[*]} " == *" cpu "* ]]; then
  line=$(node web/test-page.mjs "$base?compare=radius_scale=1.5&compare=radius_scale=4" \
    "${shot%.png}-compare.png" --webgpu off --steps 8 --timeout "${CLAMP_WEB_TIMEOUT:-300}")
  python3 - "$line" <<'PY'
import json, sys
stats = json.loads(sys.argv[1])
if "message" in stats:
    sys.exit(f"test-web: the page comparing three runs says: {stats['message']}")
runs = stats.get("run_steps") or []
print(json.dumps({"path": "cpu, three runs", "run_steps": runs, "fps": stats.get("fps"),
                  "error": stats.get("error"), "troubles": stats.get("troubles")}))
if len(runs) != 3 or min(runs) < 2:
    sys.exit(f"test-web: with two compare= the page trained {runs} steps: not three runs")
if stats.get("error") or stats.get("troubles"):
    sys.exit(f"test-web: three runs: {stats.get('error')}, {stats.get('troubles')} errors on the page")
PY
fi
# The loader: a software WebGPU adapter is passed over for the CPU build.
choice=$(node web/test-page.mjs "$base" "${shot%.png}-loader.png" --webgpu swiftshader --loader-only --timeout 60)
echo "$choice"
python3 - "$choice" <<'PY'
import json, sys
loader = json.loads(sys.argv[1]).get("loader") or {}
if loader.get("path") != "cpu" or "software" not in loader.get("reason", ""):
    sys.exit(f"test-web: on SwiftShader's WebGPU the loader chose {loader}")
PY

# Neither WebGPU nor WebGL2: the page says what is missing instead of failing silently.
message=$(node web/test-page.mjs "$base" "${shot%.png}-nothing.png" --webgpu off --webgl off --timeout 60)
echo "$message"
python3 - "$message" <<'PY'
import json, sys
text = json.loads(sys.argv[1]).get("message", "")
if "WebGL2" not in text or "WebGPU" not in text:
    sys.exit(f"test-web: with neither WebGPU nor WebGL2 the page says {text!r}")
PY
