#!/usr/bin/env bash
# Fuzzes the route file parser, the key templates and the matcher of
# ringress-routes, and the proxy's HTTP/1 parsers and framers (request and
# response heads, response framing, chunked bodies, the pipelined request
# splitter) with cargo-fuzz (libFuzzer), each for a bounded time, and
# prints per target the executions, speed, coverage, corpus and crashes.
# Exits non-zero when any target crashed (panic, OOM, timeout).
#
#   benches/fuzz.sh                        # every target, 60 s each
#   FUZZ_SECONDS=300 benches/fuzz.sh       # longer
#   benches/fuzz.sh path_matcher           # some targets only
#   FUZZ_SECONDS=600 FUZZ_SANITIZER=none benches/fuzz.sh request_head \
#       response_head response_framing_diff chunked_body request_end
#
# Environment: FUZZ_SECONDS (60), FUZZ_TIMEOUT (10: seconds one input may
# take before it counts as a crash), FUZZ_RSS_MB (2048), FUZZ_SANITIZER
# (address; "none" is faster).
#
# Needs a nightly toolchain (rustup toolchain install nightly) and a C++
# compiler for libFuzzer. The first build compiles pingora (~10 min). The
# HTTP targets get the tokens of fuzz/dicts/http.dict. The corpus grows in
# fuzz/corpus/<target> (not committed) from the committed seeds in
# fuzz/seeds/<target>; crashes land
# in fuzz/artifacts/<target>, reproduce them with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS_MB=${FUZZ_RSS_MB:-2048}
SANITIZER=${FUZZ_SANITIZER:-address}
ALL_TARGETS=(route_file key_template path_matcher request_head response_head
    response_framing_diff chunked_body request_end)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
echo "building fuzz targets (sanitizer: $SANITIZER)" >&2
if ! cargo +nightly fuzz build -s "$SANITIZER" >"$logs/build.log" 2>&1; then
    cat "$logs/build.log" >&2
    exit 2
fi
failed=0
rows=()
for target in "${TARGETS[@]}"; do
    corpus=fuzz/corpus/$target
    artifacts=fuzz/artifacts/$target
    mkdir -p "$corpus" "$artifacts"
    seeds=()
    [ -d "fuzz/seeds/$target" ] && seeds=("fuzz/seeds/$target")
    dict=()
    case $target in
    request_* | response_* | chunked_*) dict=(-dict=fuzz/dicts/http.dict) ;;
    esac
    before=$(find "$artifacts" -type f | wc -l)
    log=$logs/$target.log
    echo "fuzzing $target for ${SECONDS_PER_TARGET}s" >&2
    status=0
    cargo +nightly fuzz run -s "$SANITIZER" "$target" "$corpus" "${seeds[@]}" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" \
        -print_final_stats=1 "${dict[@]}" >"$log" 2>&1 || status=$?
    crashes=$(($(find "$artifacts" -type f | wc -l) - before))
    # libFuzzer's last status line, "#N DONE cov: C ft: F corp: ... exec/s: E",
    # and its final stats.
    execs=$(awk '/stat::number_of_executed_units/ {print $NF}' "$log" | tail -1)
    speed=$(awk '/stat::average_exec_per_sec/ {print $NF}' "$log" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    ft=$(grep -Eo 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    files=$(find "$corpus" -type f | wc -l)
    bytes=$(find "$corpus" -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f", s / 1024}')
    if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        failed=1
        crashes=$((crashes > 0 ? crashes : 1))
        echo "== $target crashed (exit $status); last lines of its log:" >&2
        grep -E -A1 "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -20 >&2 || true
        tail -5 "$log" >&2
    fi
    rows+=("$(printf '%-21s %6ss %13s %9s %7s %8s %7s %8s %7s' "$target" "$SECONDS_PER_TARGET" \
        "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "$files" "${bytes}K" "$crashes")")
done

printf '\n%-21s %7s %13s %9s %7s %8s %7s %8s %7s\n' target time executions exec/s cov ft corpus size crashes
printf '%s\n' "${rows[@]}"
echo "($(cargo +nightly --version), sanitizer $SANITIZER, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ))"
exit $failed
