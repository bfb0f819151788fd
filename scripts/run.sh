#!/usr/bin/env bash
# Install what Vizit needs on Debian 12 and run it with its embedded defaults:
# HTTP on http://127.0.0.1:8080 (open /demo), media on UDP 50000, demo mode on.
# Extra arguments go to `vizit serve` (e.g. --config vizit.toml).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_build_deps
web_deps
log "cargo build --release (the first build takes several minutes)"
cargo build --release --locked
log "starting Vizit (Ctrl-C stops it gracefully)"
exec "$ROOT/target/release/vizit" serve "$@"
