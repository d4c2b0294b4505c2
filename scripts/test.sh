#!/usr/bin/env bash
# Runs every test of the workspace, on a fresh machine as on a developer's.
#
#   1. makes sure RabbitMQ answers on 127.0.0.1:5672 with its management API on :15672
#      (starts it when installed but stopped, installs it from Debian's packages when missing);
#   2. makes a Python venv with the real `nuropb==0.1.8` for the interoperability tests;
#   3. checks formatting and lints, then runs every test and doc-test of the workspace.
#
# Any failure stops the run with a non-zero exit status.
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
export NUROPB_PYTHON="$venv/bin/python"
# Broker tests must find their broker: a missing broker is a failure, never a skip.
export NUROPB_TEST_AMQP_URL="${NUROPB_TEST_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
export NUROPB_REQUIRE_BROKER=1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked

step "all tests passed"
