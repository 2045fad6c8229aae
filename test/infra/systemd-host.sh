#!/usr/bin/env bash
# Usage: test/infra/systemd-host.sh build
#        test/infra/systemd-host.sh up DIR NAME PORT
#        test/infra/systemd-host.sh reboot NAME
#        test/infra/systemd-host.sh down DIR NAME
#        test/infra/systemd-host.sh sh NAME CMD...
# A real Debian 12 server for end-to-end tests: a Docker container that boots systemd as PID 1, with
# OpenSSH, Caddy (enabled: :80, admin API on 127.0.0.1:2019), nginx-light (installed, disabled, so a
# test can enable it on a port of its own), sudo, curl, and this machine's Node on PATH. Users: root
# and `deploy` (uid 1001, /home/deploy, bash), both reached by key only; deploy has no sudo rights
# and no linger until a test grants them. The journal is persistent (/var/log/journal), so users'
# journals are kept apart and `journalctl --user` works for a lingering user.
# Each container has its own network namespace with only loopback (--network none): its own ports
# 80, 2019, 22. Its sshd is reached from this machine at 127.0.0.1:PORT through a socat that enters
# the container's current namespace for each connection (the namespace changes at every reboot).
# What differs from a VM: the kernel is this machine's, so uptime and the boot id go on across a
# reboot (the journal sees one boot: `journalctl -b -1` is empty); sysctls of the network
# namespace start afresh at each boot, and /etc/sysctl.d is applied then, as on a server.
#
# build   makes the image local/systemd-host:12 from Debian's mirror (mmdebstrap, ~30 s); does
#         nothing when an image of the current recipe is there.
# up      (re)creates container NAME: a user key DIR/id_ed25519 (kept when DIR has one already)
#         authorized for root and deploy, a host key of its own, DIR/known_hosts trusting
#         [127.0.0.1]:PORT, the socat (pid in DIR/socat.pid); returns once `ssh root@` works.
# reboot  restarts the container (systemd shuts down and boots again) and waits for sshd.
# down    removes the container and stops the socat.
# sh      runs CMD inside the container as root (the words joined and run by bash, as ssh does).
# Needs root (nsenter, mmdebstrap) and a running dockerd (test/infra/docker.sh).
set -euo pipefail

IMAGE=local/systemd-host:12
MIRROR=http://deb.debian.org/debian
PACKAGES=systemd,systemd-sysv,dbus,libpam-systemd,openssh-server,caddy,nginx-light,curl,sudo,procps,iproute2
DEPLOY_UID=1001
BOOT_SECONDS=60

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

# Everything done to the Debian tree before it becomes the image. Its text is part of the recipe:
# changing it rebuilds the image at the next `build`.
customize() {
  local tree=$1
  # OpenSSH: keys only. The ed25519 host key alone, written per container by `up` (or made at first
  # start when a container was made some other way).
  rm -f "$tree"/etc/ssh/ssh_host_*
  cat >"$tree/etc/ssh/sshd_config.d/skiff-test.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
EOF
  mkdir -p "$tree/etc/systemd/system/ssh.service.d"
  cat >"$tree/etc/systemd/system/ssh.service.d/host-key.conf" <<'EOF'
[Service]
ExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key'
EOF
  install -d -m 700 "$tree/root/.ssh"

  # The unprivileged user. Password '*': no password login, but not a locked account.
  chroot "$tree" useradd --create-home --uid "$DEPLOY_UID" --user-group --shell /bin/bash --password '*' deploy
  install -d -m 700 -o "$DEPLOY_UID" -g "$DEPLOY_UID" "$tree/home/deploy/.ssh"

  # Persistent journal: journald keeps a journal per user (uid >= 1000) only on persistent storage.
  mkdir -p "$tree/var/log/journal" "$tree/etc/systemd/journald.conf.d"
  printf '[Journal]\nStorage=persistent\n' >"$tree/etc/systemd/journald.conf.d/persistent.conf"

  # nginx would take :80 from Caddy: installed but disabled, also against presets on a first boot.
  chroot "$tree" systemctl disable --quiet nginx.service
  mkdir -p "$tree/etc/systemd/system-preset"
  echo 'disable nginx.service' >"$tree/etc/systemd/system-preset/10-skiff-test.preset"

  # Logins read the locale from here (pam_env), as on a server set up by the installer.
  echo 'LANG=C.UTF-8' >"$tree/etc/default/locale"

  # Nothing is masked: systemd leaves out in a container what needs hardware or the kernel's own
  # settings (ConditionVirtualization), and the boot ends `running` with no failed unit.

  # This machine's Node (Debian's nodejs is too old), with the libraries it links that the tree lacks.
  local node lib
  node=$(command -v node)
  cp -L "$node" "$tree/usr/bin/node"
  for lib in $(ldd "$node" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
    [ -e "$tree$lib" ] || cp -L "$lib" "$tree/usr/lib/x86_64-linux-gnu/"
  done
  chroot "$tree" node --version >/dev/null

  # Each container gets its machine id from `up`; an empty one would mean a first boot.
  : >"$tree/etc/machine-id"
  rm -rf "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/*.bin "$tree"/tmp/* "$tree"/var/log/journal/*
}

recipe() { { echo "$PACKAGES $MIRROR $DEPLOY_UID"; declare -f customize; sha256sum "$(command -v node)"; } | sha256sum | cut -c1-16; }

build() {
  command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "dockerd is not running: run test/infra/docker.sh" >&2; exit 1; }
  local want have
  want=$(recipe)
  have=$(docker image inspect -f '{{index .Config.Labels "skiff.recipe"}}' "$IMAGE" 2>/dev/null || true)
  [ "$have" = "$want" ] && return 0
  exec 9>/tmp/skiff-systemd-host-build.lock
  flock 9
  have=$(docker image inspect -f '{{index .Config.Labels "skiff.recipe"}}' "$IMAGE" 2>/dev/null || true)
  [ "$have" = "$want" ] && return 0
  if ! command -v mmdebstrap >/dev/null; then
    echo "installing mmdebstrap"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mmdebstrap >/dev/null
  fi
  echo "building $IMAGE (recipe $want)"
  local work
  work=$(mktemp -d /tmp/skiff-systemd-host.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  if ! mmdebstrap --quiet --variant=apt --include="$PACKAGES" --skip=output/dev bookworm "$work/tree" "$MIRROR" >"$work/mmdebstrap.log" 2>&1; then
    echo "mmdebstrap failed:" >&2
    tail -n 20 "$work/mmdebstrap.log" >&2
    exit 1
  fi
  customize "$work/tree"
  local previous
  previous=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  tar -C "$work/tree" --numeric-owner --xattrs --acls -c . |
    docker import -c 'ENV container=docker' -c "LABEL skiff.recipe=$want" -c 'CMD ["/lib/systemd/systemd"]' - "$IMAGE" >/dev/null
  rm -rf "$work"
  trap - EXIT
  # The image of the previous recipe, unless a container still uses it.
  [ -z "$previous" ] || docker rmi "$previous" >/dev/null 2>&1 || true
  echo "built $IMAGE"
}

# Waits until systemd has finished booting NAME (running, or degraded: then says which units failed)
# and sshd accepts connections on the container's loopback.
wait_booted() {
  local name=$1 state= deadline=$((SECONDS + BOOT_SECONDS))
  while [ "$SECONDS" -lt "$deadline" ]; do
    # Fails while systemd has not yet opened its bus; then waits for the end of the boot.
    state=$(timeout $((deadline - SECONDS + 1)) docker exec "$name" systemctl is-system-running --wait 2>/dev/null || true)
    case $state in running | degraded) break ;; esac
    [ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" = true ] || { echo "container $name stopped: $(docker logs --tail 5 "$name" 2>&1)" >&2; exit 1; }
    sleep 0.2
  done
  case $state in
    running) ;;
    degraded) echo "warning: $name booted degraded; failed units: $(docker exec "$name" systemctl --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')" >&2 ;;
    *) echo "$name did not boot within $BOOT_SECONDS s (state: ${state:-none})" >&2; exit 1 ;;
  esac
  for _ in $(seq 50); do
    [ -n "$(docker exec "$name" ss -Htln 'sport = :22' 2>/dev/null)" ] && return 0
    sleep 0.2
  done
  echo "sshd of $name does not accept connections: $(docker exec "$name" systemctl status --no-pager ssh 2>&1 | tail -n 5)" >&2
  exit 1
}

down() {
  local dir=$1 name=$2 pid
  docker rm -f "$name" >/dev/null 2>&1 || true
  if [ -f "$dir/socat.pid" ]; then
    pid=$(cat "$dir/socat.pid")
    # socat runs in a process group of its own (setsid): the listener and its open connections.
    kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    rm -f "$dir/socat.pid"
  fi
}

up() {
  mkdir -p "$1"
  local dir name=$2 port=$3
  dir=$(cd "$1" && pwd)
  case $dir in *[!A-Za-z0-9_./-]*) echo "DIR must be a plain path (socat runs DIR/connect): $dir" >&2; exit 2 ;; esac
  command -v socat >/dev/null && command -v nsenter >/dev/null || { echo "socat or nsenter is missing: run test/infra/up.sh" >&2; exit 1; }
  build
  down "$dir" "$name"

  [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "skiff-test-user" -f "$dir/id_ed25519"
  rm -f "$dir/host_ed25519_key" "$dir/host_ed25519_key.pub"
  ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$dir/host_ed25519_key"
  echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$dir/host_ed25519_key.pub")" >"$dir/known_hosts"

  docker create --name "$name" --hostname "$name" --add-host "$name:127.0.1.1" \
    --cap-add SYS_ADMIN --cap-add NET_ADMIN \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
    --network none --stop-signal SIGRTMIN+3 --stop-timeout 10 \
    --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    "$IMAGE" /lib/systemd/systemd >/dev/null

  # Files of this container, put in before its first boot: its host key, a machine id of its own
  # (kept across reboots, as the journal's folder is named by it), the user key for root and deploy.
  local stage
  stage=$(mktemp -d)
  mkdir -p "$stage/etc/ssh" "$stage/root/.ssh" "$stage/home/deploy/.ssh"
  install -m 600 "$dir/host_ed25519_key" "$stage/etc/ssh/ssh_host_ed25519_key"
  install -m 644 "$dir/host_ed25519_key.pub" "$stage/etc/ssh/ssh_host_ed25519_key.pub"
  tr -d '-' </proc/sys/kernel/random/uuid >"$stage/etc/machine-id"
  chmod 444 "$stage/etc/machine-id"
  install -m 600 "$dir/id_ed25519.pub" "$stage/root/.ssh/authorized_keys"
  install -m 600 "$dir/id_ed25519.pub" "$stage/home/deploy/.ssh/authorized_keys"
  tar -C "$stage" --numeric-owner --owner=0 --group=0 --no-recursion -c \
    etc/ssh/ssh_host_ed25519_key etc/ssh/ssh_host_ed25519_key.pub etc/machine-id root/.ssh/authorized_keys |
    docker cp -a - "$name:/"
  tar -C "$stage" --numeric-owner --owner="$DEPLOY_UID" --group="$DEPLOY_UID" --no-recursion -c home/deploy/.ssh/authorized_keys |
    docker cp -a - "$name:/"
  rm -rf "$stage"

  docker start "$name" >/dev/null
  wait_booted "$name"

  cat >"$dir/connect" <<EOF
#!/bin/sh
# One connection to the sshd of container $name, in its network namespace of the moment.
pid=\$(docker inspect -f '{{.State.Pid}}' '$name') && [ "\$pid" != 0 ] || exit 1
exec nsenter -t "\$pid" -n socat STDIO TCP:127.0.0.1:22
EOF
  chmod 755 "$dir/connect"
  # Only its own descriptors: an inherited one (a caller's flock, the build lock) would be held until `down`.
  (for fd in /proc/self/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done 2>/dev/null
   exec setsid socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" "EXEC:$dir/connect" </dev/null >"$dir/socat.log" 2>&1) &
  echo $! >"$dir/socat.pid"

  local ssh=(ssh -F /dev/null -i "$dir/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5
    -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$dir/known_hosts" -p "$port")
  for _ in $(seq 50); do
    "${ssh[@]}" root@127.0.0.1 true 2>/dev/null && { echo "$name: ssh root@127.0.0.1 -p $port"; return 0; }
    kill -0 "$(cat "$dir/socat.pid")" 2>/dev/null || break
    sleep 0.2
  done
  echo "ssh to $name on 127.0.0.1:$port does not work: $(cat "$dir/socat.log")" >&2
  "${ssh[@]}" root@127.0.0.1 true >&2 || true
  exit 1
}

reboot() {
  local name=$1
  docker restart "$name" >/dev/null
  wait_booted "$name"
}

case "${1:-}:$#" in
  build:1) build ;;
  up:4) up "$2" "$3" "$4" ;;
  reboot:2) reboot "$2" ;;
  down:3) mkdir -p "$2" && down "$(cd "$2" && pwd)" "$3" ;;
  sh:*) [ "$#" -ge 3 ] || { echo "usage: $0 sh NAME CMD..." >&2; exit 2; }
    name=$2
    shift 2
    exec docker exec -i "$name" bash -c "$*" ;;
  *) sed -n '2,6s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
