#!/usr/bin/env bash
# Usage: test/infra/nshost.sh up DIR IP PORT | down DIR
# A throwaway "server" on this machine for tests that need several hosts: its own network, process
# and mount namespaces, so each has its own loopback ports (apps, Caddy's admin API), its own
# processes, and its own /srv/skiff-hosts (DIR/fs bind-mounted there). Its sshd is reached from
# this machine at IP:PORT (a socat on loopback that enters the namespace for each connection).
# Writes DIR/id_ed25519 (the user key), DIR/known_hosts (trusts [IP]:PORT), DIR/ns.pid (the
# namespace's first process: `nsenter -t "$(cat DIR/ns.pid)" -n -m -p CMD` runs CMD "on" the host).
set -euo pipefail

MOUNT=/srv/skiff-hosts
here=$(cd "$(dirname "$0")" && pwd)

down() {
  local dir=$1
  if [ -f "$dir/socat.pid" ]; then kill "$(cat "$dir/socat.pid")" 2>/dev/null || true; fi
  # The first process of a pid namespace ignores SIGTERM; SIGKILL takes everything inside with it.
  if [ -f "$dir/ns.pid" ]; then kill -KILL "$(cat "$dir/ns.pid")" 2>/dev/null || true; fi
  rm -f "$dir/socat.pid" "$dir/ns.pid"
}

if [ "${1:-}" = down ] && [ "$#" -eq 2 ]; then
  down "$2"
  exit 0
fi
if [ "${1:-}" != up ] || [ "$#" -ne 4 ]; then
  echo "usage: $0 up DIR IP PORT | down DIR" >&2
  exit 2
fi
mkdir -p "$2"
dir=$(cd "$2" && pwd)
ip=$3
port=$4
command -v socat >/dev/null || { echo "socat is missing: run test/infra/up.sh" >&2; exit 1; }
down "$dir"
mkdir -p "$dir/fs" "$MOUNT"

# The namespace's init: a shell that reaps whatever is orphaned inside (apps started with setsid).
setsid unshare --mount --net --pid --fork --mount-proc --propagation private \
  bash -c "mount --bind '$dir/fs' '$MOUNT' && ip link set lo up && while :; do sleep 3600 & wait \$!; done" \
  </dev/null >"$dir/ns.log" 2>&1 &
outer=$!
for _ in $(seq 50); do
  inner=$(pgrep -P "$outer" || true)
  [ -n "$inner" ] && grep -q " $MOUNT " "/proc/$inner/mountinfo" 2>/dev/null && break
  sleep 0.1
done
[ -n "${inner:-}" ] || { echo "namespace did not start: $(cat "$dir/ns.log")" >&2; exit 1; }
echo "$inner" >"$dir/ns.pid"

nsenter -t "$inner" -n -m -p bash "$here/sshd.sh" "$dir/sshd" 127.0.0.1 22 >/dev/null
cp "$dir/sshd/id_ed25519" "$dir/id_ed25519"
echo "[$ip]:$port $(cut -d' ' -f1,2 "$dir/sshd/host_ed25519_key.pub")" >"$dir/known_hosts"

setsid socat "TCP-LISTEN:$port,bind=$ip,fork,reuseaddr" "EXEC:nsenter -t $inner -n socat STDIO TCP\:127.0.0.1\:22" \
  </dev/null >"$dir/socat.log" 2>&1 &
echo $! >"$dir/socat.pid"
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/$ip/$port") 2>/dev/null && exit 0
  sleep 0.1
done
echo "sshd of $dir does not answer on $ip:$port: $(cat "$dir/socat.log")" >&2
exit 1
