#!/usr/bin/env bash
# Re-measures the numbers README states, on this machine, and prints one Markdown table row per
# claim: the claim in README's words, README's number, what was measured now, and whether it
# holds. Exits 1 if any does not hold. Speeds are floors that the slower of the 2-core machines
# README names (an AMD EPYC without AVX-512) meets; accuracies are ranges; byte-identity is exact.
#
#   scripts/claims.sh            every claim (about 25 minutes on 2 cores once built)
#   scripts/claims.sh --quick    without `clamp train`, `eval` and `embed` (about 10 minutes)
#
# Run it on a quiet machine: it times the viewer and the page. Builds what is missing (the
# release binaries; the CPU page with scripts/build-web.sh, 20 to 30 minutes the first time).
# The CPU step is set beside PyTorch's where ../shared/bench's venv has torch
# (CLAMP_TORCH_VENV, default ~/.cache/clamp-torch-venv); its row says so when it has not.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[[ ${1:-} == --quick ]] && quick=1

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/clamp-target}
echo "claims: building the release binaries" >&2
cargo build --release --quiet --bin clamp --example train_bench >&2
clamp=$CARGO_TARGET_DIR/release/clamp
bench=$CARGO_TARGET_DIR/release/examples/train_bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
m=$work/measured
mkdir -p "$m"

step() { echo "claims: $*" >&2; }

step "the viewer for 120 s"
xvfb-run -a -s "-screen 0 1280x720x24" "$clamp" view --seconds 120 --stats 2>/dev/null | tail -1 >"$m/view.json"

step "one run, then four side by side (900 frames each)"
sweep=(--compare radius_scale=1.5 --compare radius_scale=2.5 --compare radius_scale=4)
xvfb-run -a "$clamp" view --frames 900 --stats 2>/dev/null | tail -1 >"$m/one.json"
xvfb-run -a "$clamp" view "${sweep[@]}" --frames 900 --stats 2>/dev/null | tail -1 >"$m/four.json"

step "clamp record of four runs twice (the same bytes?)"
for run in a b; do
    "$clamp" record "${sweep[@]}" --frames 3 --steps-per-frame 2 --size 320x240 --backend cpu \
        --out "$work/grid-$run/" >/dev/null 2>&1
done
(cd "$work/grid-a" && sha256sum -- *.png) >"$m/grid-a.sums"
(cd "$work/grid-b" && sha256sum -- *.png) >"$m/grid-b.sums"

step "clamp record twice (the same bytes?)"
for run in a b; do
    "$clamp" record --frames 6 --steps-per-frame 4 --size 320x240 --backend cpu \
        --out "$work/record-$run/" >/dev/null 2>&1
done
(cd "$work/record-a" && sha256sum -- *.png) >"$m/record-a.sums"
(cd "$work/record-b" && sha256sum -- *.png) >"$m/record-b.sums"

step "clamp jam, N = 1,024 in 3-D, seeds 0 and 1"
for seed in 0 1; do
    "$clamp" jam --dim 3 --n 1024 --bidisperse --seed "$seed" --json >"$m/jam-$seed.json"
done

step "the CPU step (and PyTorch's, where its venv is there)"
"$bench" 20 --cpu-only >"$m/cpu-step.txt" 2>&1 || true

step "the WGPU step on this machine's Vulkan"
"$bench" 5 16 64 2 --wgpu-only >"$m/wgpu-step.txt" 2>&1 || true

step "the cargo tests, counted"
cargo test --release --quiet -- --list 2>/dev/null | grep -c ': test$' >"$m/tests.txt" || true

step "the CPU page in headless Chromium for 120 s"
[[ -f web/dist/cpu/clamp_bg.wasm.gz ]] || scripts/build-web.sh cpu >&2
CLAMP_WEB_PATHS=cpu CLAMP_WEB_SECONDS=120 CLAMP_WEB_STEPS=20 \
    scripts/test-web.sh "$work/page.png" 2>/dev/null | grep '"path": "cpu"' >"$m/page.json" || true

if [[ $quick == 0 ]]; then
    step "clamp train with its defaults (6 to 7 minutes)"
    "$clamp" train --out "$work/run" 2>/dev/null | tail -1 >"$m/train.json" || true
    step "clamp eval of that run"
    "$clamp" eval --checkpoint "$work/run" 2>/dev/null | tail -1 >"$m/eval.json" || true
    step "clamp embed and analyze of that run"
    "$clamp" embed --checkpoint "$work/run" --out "$work/emb.npy" --views 4 >/dev/null 2>&1 || true
    "$clamp" analyze --embeddings "$work/emb.npy" --radius-scale 2.5 2>/dev/null >"$m/analyze.json" || true
fi

python3 - "$m" "$quick" <<'PY'
import json, os, re, sys

measured, quick = sys.argv[1], sys.argv[2] == "1"

def read(name):
    path = os.path.join(measured, name)
    return open(path).read() if os.path.exists(path) else ""

def json_of(name):
    text = read(name).strip()
    try:
        return json.loads(text.splitlines()[-1]) if text else {}
    except (json.JSONDecodeError, IndexError):
        return {}

def find(value, key):
    """The first value under `key` anywhere in a JSON document."""
    if isinstance(value, dict):
        if key in value:
            return value[key]
        for inner in value.values():
            found = find(inner, key)
            if found is not None:
                return found
    if isinstance(value, list):
        for inner in value:
            found = find(inner, key)
            if found is not None:
                return found
    return None

rows = []

def claim(words, readme, value, holds, shown=None):
    if value is None:
        rows.append((words, readme, "not measured", "no"))
    else:
        rows.append((words, readme, shown if shown is not None else f"{value:g}", "yes" if holds(value) else "no"))

def at_least(floor):
    return lambda v: v >= floor

def at_most(ceiling):
    return lambda v: v <= ceiling

def within(low, high):
    return lambda v: low <= v <= high

view = json_of("view.json")
claim("the viewer draws frames/s (120 s)", "41-47 (AVX-512), 28-37 (EPYC); floor 25",
      view.get("fps"), at_least(25))
claim("while training steps/s", "43-51 (AVX-512), 24-37 (EPYC); floor 20",
      view.get("train_steps_per_sec"), at_least(20))
claim("class purity after 120 s", "0.58-0.62", view.get("class_purity"), within(0.55, 0.65))
claim("raw pixels' purity (PCA to 3-D)", "0.48", view.get("pixel_pca_purity"),
      within(0.475, 0.485))

one, four = json_of("one.json"), json_of("four.json")
runs = four.get("runs") or []
if one.get("fps") and four.get("fps") and len(runs) == 4:
    ratio = four["fps"] / one["fps"]
    claim("four runs side by side draw, against one run", "0.89x (35 / 40 frames/s); floor 0.75x",
          ratio, at_least(0.75), f"{ratio:.2f}x ({four['fps']:.1f} / {one['fps']:.1f})")
    slowest = min(r["train_steps_per_sec"] for r in runs) / one["train_steps_per_sec"]
    claim("each of four runs trains, against one run", "0.23x (9.5 / 42 steps/s); floor 0.2x",
          slowest, at_least(0.2), f"{slowest:.2f}x")
else:
    claim("four runs side by side draw, against one run", "0.89x", None, at_least(0.75))

grid_a, grid_b = read("grid-a.sums"), read("grid-b.sums")
claim("`clamp record` of four runs: the same frames, byte for byte", "identical",
      len(grid_a.splitlines()) if grid_a else None, lambda n: n == 3 and grid_a == grid_b,
      f"{len(grid_a.splitlines())} frames, {'identical' if grid_a == grid_b else 'different'}")

a, b = read("record-a.sums"), read("record-b.sums")
frames = len(a.splitlines())
claim("`clamp record`: the same seed gives the same frames, byte for byte", "identical",
      frames if a else None, lambda n: n == 6 and a == b,
      f"{frames} frames, {'identical' if a == b else 'different'}")

for seed in (0, 1):
    jam = json_of(f"jam-{seed}.json")
    claim(f"`clamp jam` 3-D, N = 1,024, seed {seed}: phi_J", "0.6459 +- 0.0010 (5 seeds)",
          jam.get("phi_j"), within(0.6459 - 0.003, 0.6459 + 0.003))
    claim(f"seed {seed}: Z of the non-rattlers", "2d = 6", jam.get("contacts"),
          within(5.98, 6.03))

cpu = read("cpu-step.txt")
step = re.search(r"\| training step, cpu[^|]*\| [^|]+\| (\d+) \| ([\d.]+) \|", cpu)
torch = re.search(r"\| training step, PyTorch[^|]*\| [^|]+\| (\d+) \| ([\d.]+) \|", cpu)
if step and torch:
    ratio = float(torch.group(2)) / float(step.group(2))
    claim("the CPU step against PyTorch's (median step)", "1.50x-1.94x (AVX-512), 1.64x (EPYC); floor 1.3x", ratio,
          at_least(1.3), f"{ratio:.2f}x ({step.group(2)} ms against {torch.group(2)} ms)")
else:
    rows.append(("the CPU step against PyTorch's (median step)", "1.50x-1.94x",
                 "no PyTorch venv here: " + (f"clamp {step.group(2)} ms a step" if step else "no step measured"),
                 "not measured"))

wgpu = re.search(r"\| training step, wgpu[^|]*\| [^|]+\| (\d+) \| ([\d.]+) \|", read("wgpu-step.txt"))
claim("a WGPU step of batch 64 x 2 on lavapipe (ms)", "800-980 (EPYC); ceiling 1,200",
      float(wgpu.group(2)) if wgpu else None, at_most(1200))

tests = read("tests.txt").strip()
readme = open("README.md").read()
stated = re.search(r"All (\d+) cargo tests pass", readme)
claim("the cargo tests", stated.group(1) if stated else "?", int(tests) if tests else None,
      lambda n: stated is not None and n == int(stated.group(1)))

page = json_of("page.json")
claim("the CPU page draws frames/s (120 s, headless Chromium)", "22-25 (AVX-512), 16-23 (EPYC); floor 12",
      page.get("fps"), at_least(12))
claim("the CPU page trains steps/s", "11-15 (AVX-512), 9.6-12 (EPYC); floor 7", page.get("steps_per_sec"),
      at_least(7))
claim("the CPU page's class purity within 120 s", "0.57-0.59", page.get("purity_best"),
      within(0.52, 0.65))
size = page.get("wasm_gz_bytes")
claim("the page's download (gzipped WebAssembly, MB)", "7.4-8.0",
      size / 1e6 if size else None, within(7.2, 8.2))

if not quick:
    train = json_of("train.json")
    claim("`clamp train` with its defaults: linear probe", "0.885", train.get("linear_acc"),
          within(0.878, 0.892))
    claim("`clamp train`: seconds, probes included", "about 5 min (AVX-512), 278 s (EPYC); ceiling 480",
          train.get("seconds"), at_most(480))
    evaluation = json_of("eval.json")
    claim("`clamp eval`: linear probe", "0.885", evaluation.get("linear_acc"), within(0.878, 0.892))
    claim("`clamp eval`: kNN (k = 20)", "0.868", evaluation.get("knn_acc"), within(0.860, 0.876))
    claim("`clamp eval`: raw pixels' kNN", "0.846", evaluation.get("raw_pixel_knn_acc"),
          within(0.843, 0.849))
    analysis = json_of("analyze.json")
    claim("`clamp embed` + `analyze` at r_s = 2.5: Z", "47.4", find(analysis, "mean_contacts"),
          within(40, 55))
    claim("nearest-centroid accuracy", "0.71", find(analysis, "nearest_centroid_acc"),
          within(0.66, 0.76))

print("| claim | README | measured now | holds |")
print("| --- | --- | --- | --- |")
for row in rows:
    print("| " + " | ".join(str(cell) for cell in row) + " |")
failed = [row for row in rows if row[3] == "no"]
print(f"\n{len(rows)} claims, {len(failed)} not holding", file=sys.stderr)
sys.exit(1 if failed else 0)
PY
