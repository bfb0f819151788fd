#!/usr/bin/env bash
# The SFU benchmark, Vizit and Janus side by side in one run:
#   bench/run.sh [vizit-bench options]      e.g. bench/run.sh --ramp 10:20:250 --seconds 8
# Builds release binaries and installs Janus (Debian package `janus`) if missing, then runs the
# generator and Vizit in a private network namespace that has only loopback, and Janus in a
# second namespace joined to it by a veth pair (10.99.0.1 Janus — 10.99.0.2 generator): Janus
# gathers no ICE candidates on loopback interfaces. Needs root (as CI has) for `ip netns`.
# Results: stdout, and bench/results/<UTC time>/{results.md,raw.jsonl}.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench/run.sh needs root (network namespaces)" >&2; exit 1; }
command -v janus >/dev/null || apt-get install -y janus
cargo build --release --locked -p vizit -p vizit-bench
out="bench/results/$(date -u +%Y%m%dT%H%M%SZ)"
ns="vizit-bench-janus-$$"
exec unshare -n bash -c '
  set -euo pipefail
  ns=$1 out=$2; shift 2
  ip link set lo up
  ip netns add "$ns"
  trap "ip netns del $ns" EXIT
  ip link add v1 type veth peer name v0 netns "$ns"
  ip addr add 10.99.0.2/24 dev v1
  ip link set v1 up
  ip -n "$ns" addr add 10.99.0.1/24 dev v0
  ip -n "$ns" link set lo up
  ip -n "$ns" link set v0 up
  # Janus picks its addresses at start: wait for the link to come up.
  for _ in $(seq 50); do ip -n "$ns" link show v0 | grep -q "state UP" && break; sleep 0.1; done
  target/release/vizit-bench --server target/release/vizit \
    --janus "$(command -v janus)" --janus-netns "$ns" --janus-ip 10.99.0.1 --peer-ip 10.99.0.2 \
    --out "$out" "$@"
' bash "$ns" "$out" "$@"
