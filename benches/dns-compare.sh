#!/usr/bin/env bash
# dnsperf against berth's embedded DNS server and aardvark-dns, side by side in one run.
#
#   sudo benches/dns-compare.sh            (from the workspace root; needs dnsperf, nft, ip)
#
# Everything runs in two throwaway namespaces (removed on exit, also on failure):
#   host    bridge 172.31.250.1/24 with a netavark-style masquerade rule (so conntrack is active
#           there, as on a host running podman); aardvark-dns listens on the bridge address, as
#           netavark deploys it.
#   sandbox eth0 172.31.250.2/24 on that bridge; berth's server answers on 127.0.0.11 inside it
#           (stateless port redirect, examples/serve.rs).
# dnsperf runs in the sandbox: DURATION seconds, CLIENTS clients, name queries for NAMES
# registered names (all answered locally). Each server's CPU time is read from /proc/PID/stat
# (utime+stime of the whole process) before and after each run.
#
# Environment: ROUNDS (3), DURATION (10), CLIENTS (4: dnsperf's client sockets), OUTSTANDING
# (200: queries in flight over all clients; CLIENTS=64 OUTSTANDING=64 gives about one per
# socket, as stub resolvers send them, so no two answers to one socket can be coalesced),
# NAMES (100), AARDVARK (path of aardvark-dns 2.x; default: on PATH, else
# /work/tools-dns/bin/aardvark-dns; install with `cargo install aardvark-dns --version '^2'
# --root DIR`), SERVE (berth's server binary; default: builds examples/serve in release mode).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-200}
NAMES=${NAMES:-100}
AARDVARK=${AARDVARK:-$(command -v aardvark-dns || echo /work/tools-dns/bin/aardvark-dns)}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TICK=$(getconf CLK_TCK)

[ "$(id -u)" = 0 ] || { echo "run as root (namespaces)" >&2; exit 1; }
for tool in dnsperf nft ip; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install dnsperf nftables iproute2)" >&2; exit 1; }
done
[ -x "$AARDVARK" ] || { echo "aardvark-dns not found at $AARDVARK (set AARDVARK=...)" >&2; exit 1; }
if [ -z "${SERVE:-}" ]; then
  (cd "$ROOT" && cargo build --quiet --release -p berth-dns --example serve)
  SERVE="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/serve"
fi

H=bdnsb-host-$$
S=bdnsb-sb-$$
WORK=$(mktemp -d /tmp/dns-compare.XXXXXX)
BERTH_PID=
AARD_PID=
cleanup() {
  set +e
  [ -n "$BERTH_PID" ] && kill "$BERTH_PID" 2>/dev/null && wait "$BERTH_PID" 2>/dev/null
  [ -n "$AARD_PID" ] && kill "$AARD_PID" 2>/dev/null
  sleep 0.2
  ip netns del "$S" 2>/dev/null
  ip netns del "$H" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$H"
ip netns add "$S"
ip -n "$H" link set lo up
ip -n "$S" link set lo up
ip -n "$H" link add br-bench type bridge
ip -n "$H" addr add 172.31.250.1/24 dev br-bench
ip -n "$H" link set br-bench up
ip -n "$H" link add vbench0 type veth peer name eth0 netns "$S"
ip -n "$H" link set vbench0 master br-bench up
ip -n "$S" addr add 172.31.250.2/24 dev eth0
ip -n "$S" link set eth0 up
ip -n "$S" route add default via 172.31.250.1
ip netns exec "$H" nft -f - <<'EOF'
table ip bench-nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 172.31.250.0/24 ip daddr != 172.31.250.0/24 masquerade
  }
}
EOF

for i in $(seq 0 $((NAMES - 1))); do echo "c$i A"; done >"$WORK/queries"

# berth: the embedded server of sandbox $S, names c0.. on one user-defined network
mkfifo "$WORK/berth-in"
"$SERVE" "/run/netns/$S" "$NAMES" <"$WORK/berth-in" >"$WORK/berth-out" 2>&1 &
BERTH_PID=$!
exec 9>"$WORK/berth-in"
for _ in $(seq 1 100); do grep -q ready "$WORK/berth-out" 2>/dev/null && break; sleep 0.05; done
grep -q ready "$WORK/berth-out" || { cat "$WORK/berth-out" >&2; exit 1; }

# aardvark-dns: the same names, on the bridge address
mkdir "$WORK/aardvark"
{
  echo "172.31.250.1"
  for i in $(seq 0 $((NAMES - 1))); do
    printf "%064x 10.77.%d.%d  c%d\n" "$i" $(((i + 2) / 256)) $(((i + 2) % 256)) "$i"
  done
} >"$WORK/aardvark/benchnet"
ip netns exec "$H" "$AARDVARK" --config "$WORK/aardvark" -p 53 run
AARD_PID=$(cat "$WORK/aardvark/aardvark.pid")

check() { ip netns exec "$S" dig +short +tries=1 +time=2 "@$1" c5; }
[ "$(check 127.0.0.11)" = 10.77.0.7 ] || { echo "berth does not answer" >&2; exit 1; }
[ "$(check 172.31.250.1)" = 10.77.0.7 ] || { echo "aardvark-dns does not answer" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run SERVER_NAME PID ADDRESS -> "qps completed lost cpu_s us_per_query load1"
# (load1: the 1-minute load average at the end of the run; the machine's other work shows there)
run() {
  local pid=$2 addr=$3 before after out
  before=$(cpu_ticks "$pid")
  out=$(ip netns exec "$S" dnsperf -s "$addr" -d "$WORK/queries" -l "$DURATION" -c "$CLIENTS" -T 2 -q "$OUTSTANDING" 2>&1)
  after=$(cpu_ticks "$pid")
  local qps completed lost
  qps=$(awk '/Queries per second/ {print $4}' <<<"$out")
  completed=$(awk '/Queries completed/ {print $3}' <<<"$out")
  lost=$(awk '/Queries lost/ {print $3}' <<<"$out")
  awk -v n="$1" -v q="$qps" -v c="$completed" -v l="$lost" -v t=$((after - before)) -v hz="$TICK" \
    -v load="$(cut -d' ' -f1 /proc/loadavg)" \
    'BEGIN { cpu = t / hz; printf "%-9s %10.0f %10d %6d %8.2f %8.2f %6s\n", n, q, c, l, cpu, (c > 0 ? cpu * 1e6 / c : 0), load }'
}

printf "%-9s %10s %10s %6s %8s %8s %6s\n" server qps answered lost cpu_s us/query load1
for r in $(seq 1 "$ROUNDS"); do
  run berth "$BERTH_PID" 127.0.0.11 | tee -a "$WORK/results"
  run aardvark "$AARD_PID" 172.31.250.1 | tee -a "$WORK/results"
done
echo "medians over $ROUNDS rounds (dnsperf -l $DURATION -c $CLIENTS -T 2 -q $OUTSTANDING, $NAMES names):"
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
for s in berth aardvark; do
  qps=$(awk -v s="$s" '$1 == s {print $2}' "$WORK/results" | median)
  us=$(awk -v s="$s" '$1 == s {print $6}' "$WORK/results" | median)
  printf "  %-9s %10s qps %8s us of server CPU per answered query\n" "$s" "$qps" "$us"
done
b=$(awk '$1 == "berth" {print $6}' "$WORK/results" | median)
a=$(awk '$1 == "aardvark" {print $6}' "$WORK/results" | median)
awk -v b="$b" -v a="$a" 'BEGIN { if (a > 0) printf "  CPU per query, berth / aardvark: %.2f (goal: at most 0.33)\n", b / a }'
