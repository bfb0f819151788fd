#!/usr/bin/env bash
# A longer fuzzing run than CI's, with a fresh seed: ./scripts/fuzz.sh [iterations per target]
set -euo pipefail
cd "$(dirname "$0")/.."
export FUZZ_ITERATIONS="${1:-200000}"
export FUZZ_SEED="${FUZZ_SEED:-$(date +%s%N)}"
echo "fuzzing: $FUZZ_ITERATIONS iterations per target, seed $FUZZ_SEED"
cargo test --release -p vizit-media fuzz
cargo test --release -p vizit-media --test router mangled
cargo test --release -p vizit-signaling --test fuzz
cargo test --release -p vizit-api --test messengers mangled_webhook_bodies_never_fail_the_server::sqlite
echo "no crash (seed $FUZZ_SEED)"
