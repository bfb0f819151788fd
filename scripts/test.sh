#!/usr/bin/env bash
# Run every test tier: formatting and lints, Rust unit + integration tests (real WebSocket, real
# UDP), the call page's type check, and the browser end-to-end test (Chromium in a private
# network namespace). Installs what it needs on Debian 12.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_build_deps
ensure_node 20
apt_install chromium fonts-liberation iproute2 util-linux openssl curl libengine-gost-openssl nftables coturn firefox-esr
web_deps
start_postgres
trap 'stop_s3; stop_postgres' EXIT
start_s3

log "no import loops between the files of any crate"
for crate in src api/src media/src signaling/src recordings/src sandbox/src bench/src integrations/src fuzzkit/src; do
  python3 scripts/import-loops.py "$crate"
done
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
log "web-client typecheck"
(cd web-client && npm run --silent typecheck)
log "cargo test"
cargo test --locked --workspace
log "OpenAPI document validity (openapi-spec-validator)"
mkdir -p "$ROOT/target/openapi"
"$ROOT/target/debug/vizit" openapi > "$ROOT/target/openapi/openapi.json"
"$ROOT/.venv-test/bin/openapi-spec-validator" "$ROOT/target/openapi/openapi.json"
log "browser end-to-end"
"$ROOT/scripts/e2e.sh"
log "all tests passed"
