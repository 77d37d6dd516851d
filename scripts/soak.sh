#!/usr/bin/env bash
# Soak benchmark: runs the viewer (training and drawing) for MINUTES and samples its resident
# memory every 10 s, then prints a table (one sample a minute) and the growth after the first
# minute. It fails (exit 1) when the viewer fails, trains no step, or the median of the last
# five minutes lies more than SOAK_LIMIT percent (5) above the sample at one minute.
#
#   scripts/soak.sh [MINUTES] [extra clamp view flags...]      (default 30 minutes)
#
# Needs a display (run under `xvfb-run -a` without one) and a release build.
set -euo pipefail
minutes=${1:-30}
shift || true
bin=${CLAMP_BIN:-${CARGO_TARGET_DIR:-target}/release/clamp}
[[ -x $bin ]] || { echo "soak: no binary at $bin (cargo build --release, or set CLAMP_BIN)" >&2; exit 1; }
seconds=$((minutes * 60))
stats=$(mktemp)
"$bin" view --seconds "$seconds" --stats "$@" >"$stats" 2>/dev/null &
pid=$!
rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null; }
echo "| t (s) | RSS (MiB) |"
echo "| ---: | ---: |"
samples=()
t=0
while kill -0 "$pid" 2>/dev/null; do
    rss=$(rss_mib)
    if [[ -n $rss ]]; then
        samples+=("$t $rss")
        # Every minute in the table; every sample in the growth figures.
        (( t % 60 == 0 )) && echo "| $t | $rss |"
    fi
    sleep 10
    t=$((t + 10))
done
wait "$pid" || { echo "soak: clamp view failed" >&2; exit 1; }
# Growth after the first minute: the sample at 60 s against the median of the last five
# minutes' samples (a single sample may fall inside a probe, whose working set is handed back
# within seconds), beside the peak and the last sample.
limit=${SOAK_LIMIT:-5}
growth=$(printf '%s\n' "${samples[@]}" | awk -v end="$seconds" '
    $1 >= 60 && !base { base = $2 }
    $1 >= 60 { if ($2 > peak) peak = $2; last = $2 }
    $1 >= end - 300 { late[++n] = $2 }
    END {
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (late[j] < late[i]) { t = late[i]; late[i] = late[j]; late[j] = t }
        median = (n % 2) ? late[(n + 1) / 2] : (late[n / 2] + late[n / 2 + 1]) / 2
        printf "\nat 60 s: %.1f MiB; last five minutes: median %.1f MiB (%+.2f%%); peak %.1f MiB (%+.2f%%); last %.1f MiB (%+.2f%%)\n",
            base, median, 100 * (median - base) / base, peak, 100 * (peak - base) / base, last, 100 * (last - base) / base > "/dev/stderr"
        if (!base || !n) { print "none"; exit }
        printf "%.2f\n", 100 * (median - base) / base
    }')
line=$(cat "$stats")
rm -f "$stats"
echo "clamp view --stats: $line"
steps=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1]).get("train_step", 0))' "$line" 2>/dev/null || echo 0)
(( steps > 0 )) || { echo "soak: the viewer trained no step" >&2; exit 1; }
[[ $growth != none ]] || { echo "soak: too short to measure growth (at least 2 minutes)" >&2; exit 1; }
if awk -v g="$growth" -v l="$limit" 'BEGIN { exit !(g > l) }'; then
    echo "soak: resident memory grew ${growth}% after the first minute, above ${limit}%" >&2
    exit 1
fi
echo "soak: growth ${growth}% after the first minute, within ${limit}%"
