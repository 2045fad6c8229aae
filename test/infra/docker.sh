#!/usr/bin/env bash
# Usage: test/infra/docker.sh
# A Docker engine for the docker tests, within this machine's rules: dockerd without a bridge
# network or iptables (containers use --network host), and a base image made from this machine's
# own Node (no registry is reachable): local/node-base:20, with a user `app` (1000).
# Idempotent: a running dockerd and an existing image are left alone.
set -euo pipefail

if ! command -v dockerd >/dev/null 2>&1; then
  echo "installing docker.io"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  # Only its own descriptors: an inherited one (a caller's flock of /tmp/skiff-e2e.lock) would be
  # held as long as dockerd runs, and every later test run would wait for it for ever.
  (for fd in /proc/self/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done 2>/dev/null
   exec setsid dockerd --bridge=none --iptables=false --ip-forward=false </dev/null >/tmp/skiff-dockerd.log 2>&1) &
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start: $(tail -n 3 /tmp/skiff-dockerd.log)" >&2; exit 1; }
fi
if ! docker image inspect local/node-base:20 >/dev/null 2>&1; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  node=$(command -v node)
  mkdir -p "$root/usr/bin" "$root/etc" "$root/tmp" "$root/data"
  cp -L "$node" "$root/usr/bin/node"
  for lib in $(ldd "$node" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    cp -L --parents "$lib" "$root"
  done
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\napp:x:1000:1000:app:/app:/usr/sbin/nologin\n' >"$root/etc/passwd"
  printf 'root:x:0:\napp:x:1000:\n' >"$root/etc/group"
  chmod 1777 "$root/tmp"
  chown 1000:1000 "$root/data"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/bin' - local/node-base:20 >/dev/null
fi
echo "docker ready: $(docker version -f '{{.Server.Version}}'), image local/node-base:20"
