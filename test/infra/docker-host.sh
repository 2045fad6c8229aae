#!/usr/bin/env bash
# Usage: test/infra/docker-host.sh DIR SIZE
# A second Docker engine on this machine, standing for a server's own Docker: its images and layers
# are its own (a deploy must ship them), on a tmpfs of SIZE (e.g. 600m) so that a host short of disk
# can be tested. Within this machine's rules: no bridge network, no iptables. Its socket is
# DIR/docker.sock; a test sshd points its sessions there (SetEnv DOCKER_HOST=...).
# Idempotent: a running engine is left alone. `docker-host.sh --stop DIR` stops it and unmounts
# what it mounted under DIR.
set -euo pipefail

if [ "${1:-}" = --stop ]; then
  dir=$2
  if p=$(cat "$dir/docker.pid" 2>/dev/null) && kill "$p" 2>/dev/null; then
    for _ in $(seq 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  fi
  # Deepest first: the engine's network namespace file, then its tmpfs.
  awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  exit 0
fi

if [ "$#" -ne 2 ]; then
  echo "usage: $0 DIR SIZE" >&2
  exit 2
fi
mkdir -p "$1"
dir=$(cd "$1" && pwd)
sock="$dir/docker.sock"

# dockerd installed, and the main engine running with the base image the builds start from.
env -u DOCKER_HOST bash "$(dirname "$0")/docker.sh" >/dev/null
export DOCKER_HOST="unix://$sock"

if docker info >/dev/null 2>&1; then
  echo "docker host already running: $sock"
  exit 0
fi
mkdir -p "$dir/root"
if ! mountpoint -q "$dir/root"; then
  mount -t tmpfs -o "size=$2" tmpfs "$dir/root" || { echo "cannot mount a tmpfs of $2 at $dir/root (root needed)" >&2; exit 1; }
fi
# Only its own descriptors: an inherited one (a caller's flock) would be held as long as dockerd runs.
(for fd in /proc/self/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done 2>/dev/null
 exec setsid dockerd --data-root "$dir/root" --exec-root "$dir/exec" -H "$DOCKER_HOST" --pidfile "$dir/docker.pid" \
  --bridge=none --iptables=false --ip-forward=false </dev/null >"$dir/dockerd.log" 2>&1) &
for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
docker info >/dev/null 2>&1 || { echo "the second dockerd did not start: $(tail -n 3 "$dir/dockerd.log")" >&2; exit 1; }
echo "docker host ready: $sock ($2)"
