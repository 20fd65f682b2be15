#!/bin/sh
# Runs the exposition fuzz target for a while (default 300 s), seeded with the
# exposition samples. Needs `cargo install cargo-fuzz` and a nightly toolchain.
# Not part of CI.
set -eu
cd "$(dirname "$0")"
seconds="${1:-300}"
corpus=corpus/parse
mkdir -p "$corpus"
find ../tests/data/exposition-samples -type f -name '*' ! -name '*.gz' -size -64k \
    -exec cp {} "$corpus"/ \; 2>/dev/null || true
exec cargo +nightly fuzz run parse "$corpus" -- -max_total_time="$seconds"
