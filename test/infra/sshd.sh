#!/usr/bin/env bash
# Usage: test/infra/sshd.sh DIR IP PORT
# Runs a throwaway sshd for the SSH tests, everything in DIR: a host key, a user key (id_ed25519)
# allowed in DIR/authorized_keys, DIR/sshd_config, and DIR/known_hosts that trusts the host key.
# SSHD_EXTRA_CONFIG, when set, is appended to the config (e.g. `SetEnv DOCKER_HOST=...`: a host
# whose sessions see another Docker daemon).
# Idempotent: keys are kept, and a running sshd is left alone unless its config changed.
# Stop it with: kill "$(cat DIR/sshd.pid)"
set -euo pipefail

if [ "$#" -ne 3 ]; then
  echo "usage: $0 DIR IP PORT" >&2
  exit 2
fi
mkdir -p "$1"
dir=$(cd "$1" && pwd) # sshd needs absolute paths
ip=$2
port=$3
sshd=/usr/sbin/sshd

if [ ! -x "$sshd" ]; then
  echo "installing openssh-server"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssh-server >/dev/null
fi

for key in host_ed25519_key id_ed25519; do
  if [ ! -f "$dir/$key" ]; then
    ssh-keygen -q -t ed25519 -N '' -C "skiff-test-$key" -f "$dir/$key"
    echo "generated $dir/$key"
  fi
done
cp "$dir/id_ed25519.pub" "$dir/authorized_keys"

write_config() {
  cat <<EOF
ListenAddress $ip
Port $port
HostKey $dir/host_ed25519_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
LogLevel VERBOSE
EOF
  # OpenSSH 9.8+ shuts out a source address after failed logins, which the refusal tests cause on purpose.
  if "$sshd" -t -f /dev/null -o "HostKey=$dir/host_ed25519_key" -o PerSourcePenalties=no 2>/dev/null; then
    echo "PerSourcePenalties no"
  fi
  if [ -n "${SSHD_EXTRA_CONFIG:-}" ]; then printf '%s\n' "$SSHD_EXTRA_CONFIG"; fi
}
write_config >"$dir/sshd_config.new"

running() { [ -f "$dir/sshd.pid" ] && kill -0 "$(cat "$dir/sshd.pid")" 2>/dev/null; }
accepting() { (exec 3<>"/dev/tcp/$ip/$port") 2>/dev/null; }

if running && ! cmp -s "$dir/sshd_config.new" "$dir/sshd_config"; then
  echo "config changed: stopping sshd $(cat "$dir/sshd.pid")"
  kill "$(cat "$dir/sshd.pid")"
  for _ in $(seq 50); do running || break; sleep 0.1; done
fi
mv "$dir/sshd_config.new" "$dir/sshd_config"

if running; then
  echo "sshd already running (pid $(cat "$dir/sshd.pid")) on $ip:$port"
else
  if accepting; then
    echo "something else already listens on $ip:$port; stop it first" >&2
    exit 1
  fi
  mkdir -p /run/sshd # privilege separation directory
  "$sshd" -f "$dir/sshd_config" -E "$dir/sshd.log"
  # sshd binds after it has forked: only the pid file, written after binding, tells that it started.
  for _ in $(seq 50); do running && break; sleep 0.1; done
  if ! running; then
    echo "sshd failed to start; $dir/sshd.log says:" >&2
    tail -n 5 "$dir/sshd.log" >&2
    exit 1
  fi
  echo "started sshd (pid $(cat "$dir/sshd.pid")) on $ip:$port"
fi

if [ "$port" = 22 ]; then name=$ip; else name="[$ip]:$port"; fi
echo "$name $(cut -d' ' -f1,2 "$dir/host_ed25519_key.pub")" >"$dir/known_hosts"
echo "wrote $dir/known_hosts"

for _ in $(seq 100); do
  if accepting; then
    echo "sshd accepts connections on $ip:$port"
    exit 0
  fi
  sleep 0.1
done
echo "sshd does not accept connections on $ip:$port after 10 s; see $dir/sshd.log" >&2
exit 1
