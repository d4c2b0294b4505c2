#!/usr/bin/env bash
# Starts an etcd for the container tests on loopback ports of its own, with a temporary data dir.
#   usage: scripts/start-etcd.sh DATA_DIR
# Installs Debian's etcd-server when etcd is missing. Prints the client URL on stdout and writes
# the process id to DATA_DIR/pid; the caller stops it (kill "$(cat DATA_DIR/pid)") and removes
# DATA_DIR. Any failure exits non-zero.
set -euo pipefail
dir=${1:?usage: start-etcd.sh DATA_DIR}
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q etcd-server etcd-client >&2
fi
# A Debian install may start a system etcd on 2379 where services start; ours stays apart.
free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=23790
while ! free "$port" || ! free $((port + 1)); do port=$((port + 2)); done
client="http://127.0.0.1:$port" peer="http://127.0.0.1:$((port + 1))"
mkdir -p "$dir"
etcd --name nuropb-test --data-dir "$dir/data" \
  --listen-client-urls "$client" --advertise-client-urls "$client" \
  --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
  --initial-cluster "nuropb-test=$peer" >"$dir/etcd.log" 2>&1 &
echo $! >"$dir/pid"
for _ in $(seq 1 100); do
  if ETCDCTL_API=3 etcdctl --endpoints "$client" endpoint health >/dev/null 2>&1; then
    echo "$client"
    exit 0
  fi
  kill -0 "$(cat "$dir/pid")" 2>/dev/null || break
  sleep 0.2
done
echo "etcd did not start on $client:" >&2
tail -20 "$dir/etcd.log" >&2
exit 1
