#!/usr/bin/env bash
# Runs every test of the workspace, on a fresh machine as on a developer's.
#
#   1. makes sure RabbitMQ answers on 127.0.0.1:5672 with its management API on :15672
#      (starts it when installed but stopped, installs it from Debian's packages when missing);
#   2. makes a Python venv with the real `nuropb==0.1.8` for the interoperability tests (and
#      Python's gateway `nuropb-gw==0.1.4`, which the gateway benchmark measures against);
#   3. installs protoc and the protobuf well-known types (Debian's protobuf-compiler and
#      libprotobuf-dev) for etcd-client's build, and starts an etcd (Debian's etcd-server,
#      installed when missing) on loopback ports of its own for the container tests, stopped at
#      the end of the run;
#   4. installs Debian's chromium and npm's playwright-core (into target/browser-test) for the
#      web console's test in a real headless browser;
#   5. checks formatting, lints and the supply chain, then runs every test, doc-test and
#      benchmark smoke run of the workspace against that broker, that etcd, that Python and the
#      testkit.
#
# Any failure stops the run with a non-zero exit status. Broker, etcd and interop tests fail,
# never skip, when their broker, etcd or Python is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

step "RabbitMQ on 127.0.0.1:5672"
scripts/start-rabbitmq.sh

step "Python venv with nuropb==0.1.8"
venv="$root/target/nuropb-venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import nuropb' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check nuropb==0.1.8
fi
if ! "$venv/bin/python" -c 'import nuropb_gw' 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check nuropb-gw==0.1.4
fi
export NUROPB_PYTHON="$venv/bin/python"
export NUROPB_TEST_AMQP_URL="${NUROPB_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
# The recorded Python traffic the golden tests replay.
export NUROPB_WIRE_CAPTURES="${NUROPB_WIRE_CAPTURES:-$root/../shared/wire/wire-captures}"

step "protoc for etcd-client (nuropb-container)"
if ! command -v protoc >/dev/null || [ ! -f /usr/include/google/protobuf/descriptor.proto ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
    protobuf-compiler libprotobuf-dev
fi

step "etcd for the container tests"
etcd_dir=$(mktemp -d)
stop_etcd() {
  [ -f "$etcd_dir/pid" ] && kill "$(cat "$etcd_dir/pid")" 2>/dev/null || true
  rm -rf "$etcd_dir"
}
trap stop_etcd EXIT
NUROPB_TEST_ETCD=$(scripts/start-etcd.sh "$etcd_dir")
export NUROPB_TEST_ETCD
echo "etcd on $NUROPB_TEST_ETCD"

step "Chromium and playwright-core for the console's browser test"
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q chromium
fi
if [ ! -f "$root/target/browser-test/node_modules/playwright-core/package.json" ]; then
  command -v npm >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q nodejs npm
  }
  npm install --no-audit --no-fund --silent --prefix "$root/target/browser-test" playwright-core@1.65.2
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo doc (every public item documented, every link resolved)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --locked

step "supply chain (cargo deny, offline)"
if [ -x "$root/../shared/scripts/supply-chain-check.sh" ]; then
  "$root/../shared/scripts/supply-chain-check.sh" deny.toml
else
  echo "no ../shared/scripts/supply-chain-check.sh: the offline advisory database is missing" >&2
  exit 1
fi

step "cargo test"
# The examples are built as programs (the examples test runs the README's main job), the rest as
# tests; `--all-targets` would build the examples as test harnesses instead.
cargo build --workspace --examples --all-features --locked
cargo test --workspace --lib --bins --tests --benches --all-features --locked --no-fail-fast
cargo test --workspace --doc --all-features --locked

step "fuzz smoke: every target for ${NUROPB_FUZZ_SECONDS:-20}s"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
targets=$(cd fuzz && cargo fuzz list)
[ -n "$targets" ] || { echo "cargo fuzz list found no fuzz targets" >&2; exit 1; }
for target in $targets; do
  # cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain take them.
  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- \
      -max_total_time="${NUROPB_FUZZ_SECONDS:-20}" -rss_limit_mb=2048 >"$root/target/fuzz-$target.log" 2>&1) \
    || { tail -40 "$root/target/fuzz-$target.log"; echo "fuzz target $target failed" >&2; exit 1; }
  grep -h '^Done' "$root/target/fuzz-$target.log" | sed "s/^/$target: /"
done

step "all tests passed"
