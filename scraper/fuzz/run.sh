#!/bin/sh
# Runs the exposition fuzz target for a while (default 300 s), seeded with the
# exposition samples. Needs `cargo install cargo-fuzz` (runs on stable via RUSTC_BOOTSTRAP=1).
# Not part of CI.
set -eu
cd "$(dirname "$0")"
seconds="${1:-300}"
corpus=corpus/parse
mkdir -p "$corpus"
find ../tests/data/exposition-samples -type f -name '*' ! -name '*.gz' -size -64k \
    -exec cp {} "$corpus"/ \; 2>/dev/null || true
exec env RUSTC_BOOTSTRAP=1 cargo fuzz run parse "$corpus" -- -max_total_time="$seconds"
