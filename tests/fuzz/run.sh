#!/bin/sh
# run.sh BUILD_DIR SECONDS: runs every fuzz target built in BUILD_DIR (configured with
# -DTG_FUZZ=ON, built with --target fuzz) for SECONDS each, starting from the committed seed
# corpus copied to a temporary directory (the committed corpus is never written). Builds nothing.
# Exits non-zero if any target crashes, leaks, times out or is missing; the reproducer is kept in
# the temporary directory, which is then printed and not removed.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS" >&2
    exit 2
fi
build=$1
secs=$2
here=$(cd "$(dirname "$0")" && pwd)
targets="fuzz_http fuzz_reqbody fuzz_sse fuzz_snapshot fuzz_xlate fuzz_responses fuzz_rstore"

work=$(mktemp -d "${TMPDIR:-/tmp}/tg-fuzz.XXXXXX")
failed=""
for t in $targets; do
    bin=$build/fuzz/$t
    if [ ! -x "$bin" ]; then
        echo "fuzz: $bin is missing (configure with -DTG_FUZZ=ON and build --target fuzz)" >&2
        failed="$failed $t"
        continue
    fi
    mkdir -p "$work/$t/corpus" "$work/$t/artifacts"
    if [ -d "$here/corpus/$t" ]; then
        cp "$here/corpus/$t"/* "$work/$t/corpus/" 2>/dev/null || true
    fi
    echo "fuzz: $t for ${secs}s"
    dict=""
    if [ -f "$here/$t.dict" ]; then
        dict="-dict=$here/$t.dict"
    fi
    # -timeout: one input taking this long is a hang worth reporting
    # shellcheck disable=SC2086 # $dict is empty or one word
    if ! "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        $dict -artifact_prefix="$work/$t/artifacts/" "$work/$t/corpus" >"$work/$t/log" 2>&1; then
        echo "fuzz: $t FAILED; last lines of $work/$t/log:" >&2
        tail -n 40 "$work/$t/log" >&2
        ls -l "$work/$t/artifacts" >&2
        failed="$failed $t"
    else
        grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$work/$t/log" | tr '\n' ' '
        echo
    fi
done

if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed (logs and reproducers in $work)" >&2
    exit 1
fi
rm -rf "$work"
echo "fuzz: all targets ran ${secs}s without a crash"
