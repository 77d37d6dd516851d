#!/usr/bin/env bash
# Serves web/dist on localhost, opens it in headless Chromium with software WebGPU (SwiftShader),
# waits until the page has trained, saves a screenshot and prints one JSON line
#   {"steps": N, "loss_first": a, "loss_last": b, "fps": f, ...}
# It fails unless N >= 20 and b < a. Then it opens the page with WebGPU switched off, which
# must say so instead of failing silently.
#
#   scripts/build-web.sh && scripts/test-web.sh web-shot.png
#
# Installs Debian's chromium (as root) and playwright-core (npm, web/package-lock.json) when
# missing. CLAMP_WEB_QUERY adds settings to the page's address (e.g. "batch=64"),
# CLAMP_WEB_STEPS waits for more steps (default 20), CLAMP_WEB_TIMEOUT for longer (300 s).
set -euo pipefail
cd "$(dirname "$0")/.."
shot=${1:?usage: scripts/test-web.sh SHOT.png}
[[ -f web/dist/index.html && -f web/dist/clamp_bg.wasm ]] ||
  { echo "test-web: web/dist is not built: run scripts/build-web.sh" >&2; exit 1; }
if ! command -v chromium >/dev/null; then
  if [[ $(id -u) == 0 ]]; then
    apt-get install -y -q chromium >/dev/null
  else
    echo "test-web: needs Chromium: sudo apt-get install chromium" >&2
    exit 1
  fi
fi
[[ -d web/node_modules/playwright-core ]] || (cd web && npm ci --no-audit --no-fund --silent)

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

line=$(node web/test-page.mjs "http://127.0.0.1:$port/?${CLAMP_WEB_QUERY:-}" "$shot" \
  "${CLAMP_WEB_STEPS:-20}" "${CLAMP_WEB_TIMEOUT:-300}")
echo "$line"
python3 - "$line" <<'PY'
import json, sys
stats = json.loads(sys.argv[1])
problems = []
if stats["steps"] < 20:
    problems.append(f"only {stats['steps']} steps")
if not (stats["loss_first"] is not None and stats["loss_last"] is not None
        and stats["loss_last"] < stats["loss_first"]):
    problems.append(f"the loss did not fall ({stats['loss_first']} -> {stats['loss_last']})")
if problems:
    sys.exit("test-web: " + "; ".join(problems))
PY

# Without WebGPU the page must say so (and name the browsers that have it).
message=$(NO_WEBGPU=1 node web/test-page.mjs "http://127.0.0.1:$port/" "${shot%.png}-no-webgpu.png" 0 60)
echo "$message"
python3 - "$message" <<'PY'
import json, sys
text = json.loads(sys.argv[1])["no_webgpu_message"]
if "WebGPU" not in text or "Chrome" not in text:
    sys.exit(f"test-web: without WebGPU the page says {text!r}")
PY
