#!/usr/bin/env bash
# Browser end-to-end tests: Debian's Chromium (playwright-core) with a fake camera and microphone
# against a real `vizit serve`, all inside a new network namespace that has only loopback, so
# media never leaves the machine. Needs root (or unprivileged user namespaces) for `unshare -n`.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
# The same targets (and so the same feature set) as `cargo test --workspace`: no rebuild after it.
cargo build --locked --workspace --all-targets
if [ "$(id -u)" -eq 0 ]; then
  exec unshare -n bash -c 'ip link set lo up && cd web-client && exec node --test e2e/'
else
  exec unshare -r -n bash -c 'ip link set lo up && cd web-client && exec node --test e2e/'
fi
