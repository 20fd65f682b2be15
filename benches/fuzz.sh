#!/usr/bin/env bash
# Runs every cargo-fuzz target of the project for a bounded time each and
# reports what they found. Not part of CI.
#
#   benches/fuzz.sh [SECONDS_PER_TARGET]        (default 120)
#
# Fuzz directories are found by their Cargo.toml carrying
# `[package.metadata] cargo-fuzz = true` (scraper/fuzz today, any other later);
# targets by `cargo fuzz list`. Each target's corpus lives in
# <fuzz dir>/corpus/<target>; a `parse` target is seeded with the exposition
# samples in scraper/tests/data/exposition-samples. Findings are the files
# libFuzzer leaves in <fuzz dir>/artifacts/<target>/ (crash-*, oom-*,
# timeout-*, leak-*); the script lists them and exits 1 when there is any.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain, or
# the stable one with RUSTC_BOOTSTRAP=1 (used when no nightly is installed).
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-120}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo "+$toolchain" fuzz --version >/dev/null 2>&1; then
    if [ -z "${FUZZ_TOOLCHAIN:-}" ] && cargo fuzz --version >/dev/null 2>&1; then
        toolchain="$(rustup show active-toolchain | cut -d' ' -f1)"
        export RUSTC_BOOTSTRAP=1
        echo "fuzz.sh: no nightly toolchain; using $toolchain with RUSTC_BOOTSTRAP=1"
    else
        echo "fuzz.sh: cargo-fuzz on the $toolchain toolchain is missing:" >&2
        echo "  cargo install cargo-fuzz (and a nightly toolchain, or stable with RUSTC_BOOTSTRAP=1)" >&2
        exit 2
    fi
fi

mapfile -t fuzz_dirs < <(grep -rl --include=Cargo.toml -E '^cargo-fuzz *= *true' . \
    --exclude-dir=target --exclude-dir=.git 2>/dev/null | xargs -r -n1 dirname | sort)
if [ ${#fuzz_dirs[@]} -eq 0 ]; then
    echo "fuzz.sh: no cargo-fuzz directories in the project; nothing to run."
    exit 0
fi

report=()
findings=0
for dir in "${fuzz_dirs[@]}"; do
    mapfile -t targets < <(cargo "+$toolchain" fuzz list --fuzz-dir "$dir" 2>/dev/null)
    if [ ${#targets[@]} -eq 0 ]; then
        report+=("$dir: no targets")
        continue
    fi
    for target in "${targets[@]}"; do
        corpus="$dir/corpus/$target"
        artifacts="$dir/artifacts/$target"
        mkdir -p "$corpus" "$artifacts"
        if [ "$target" = parse ] && [ -d scraper/tests/data/exposition-samples ]; then
            find scraper/tests/data/exposition-samples -type f ! -name '*.gz' -size -64k \
                -exec cp {} "$corpus"/ \; 2>/dev/null || true
        fi
        before=$(find "$artifacts" -type f | wc -l)
        log="$dir/fuzz-$target.log"
        echo "== $dir: $target for ${seconds}s (log: $log)"
        started=$(date +%s)
        cargo "+$toolchain" fuzz run --fuzz-dir "$dir" "$target" "$corpus" \
            -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
        status=$?
        took=$(( $(date +%s) - started ))
        after=$(find "$artifacts" -type f | wc -l)
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        new=$(( after - before ))
        line="$dir: $target: exit $status after ${took}s, ${runs:-?} runs, ${cov:-cov: ?}, corpus $(find "$corpus" -type f | wc -l) files, $new new finding(s)"
        if [ "$new" -gt 0 ] || { [ "$status" -ne 0 ] && [ "$status" -ne 124 ]; }; then
            findings=$((findings + 1))
            line="$line -- see $artifacts and $log"
            find "$artifacts" -type f -printf '    %p\n' 2>/dev/null | head -20
        fi
        report+=("$line")
    done
done

echo
echo "== fuzz report (${seconds}s per target, $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%s\n' "${report[@]}"
if [ "$findings" -gt 0 ]; then
    echo "$findings target(s) found something."
    exit 1
fi
echo "No findings."
