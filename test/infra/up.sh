#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine, and does nothing when it is all there.
# The end-to-end tests of the local host need: a POSIX shell with setsid, tar, curl, and a C++
# toolchain with python3 to compile the example app's SQLite module (no prebuilt download here);
# the blue-green tests need Caddy, nginx and HAProxy (the TLS tests pebble, an ACME server, and certbot), the SSH host tests OpenSSH (the tests start their own
# instances on loopback), the several-hosts tests socat and nsenter (test/infra/nshost.sh), the
# backup tests sqlite3 and PostgreSQL, the Python example's tests Debian's python3 packages.
# The export test checks the Compose files it writes with docker-compose config (parse only: it starts nothing).
# Ships to SSH hosts are zstd-packed where both ends have zstd (lib/ship/compress.ts).
set -euo pipefail

need=()
for pair in curl:curl socat:socat nsenter:util-linux setsid:util-linux tar:tar python3:python3 make:make g++:g++ sqlite3:sqlite3 ps:procps caddy:caddy nginx:nginx haproxy:haproxy pebble:pebble certbot:certbot ssh-keygen:openssh-client sshd:openssh-server docker-compose:docker-compose zstd:zstd; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
# The backup tests run a PostgreSQL 15 server of their own (test/infra/postgres.sh).
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
# The Python example (examples/python) runs on Debian's python3 packages (no PyPI here); the venv
# its release command makes needs python3-venv (ensurepip). Debian's python3 by its path: another
# python3 may come first on PATH.
/usr/bin/python3 -c 'import fastapi, uvicorn, alembic, sqlalchemy, psycopg2, ensurepip' >/dev/null 2>&1 ||
  need+=(python3-fastapi python3-uvicorn python3-alembic python3-sqlalchemy python3-psycopg2 python3-venv)
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing: ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Caddy reloads its config at every switch, opening a new listening socket; without this the kernel
# resets connections still queued on the old one (docs/deploy-vps.md#proxies). Per network namespace.
if [ "$(cat /proc/sys/net/ipv4/tcp_migrate_req 2>/dev/null)" = 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO sysctl -q -w net.ipv4.tcp_migrate_req=1 || echo "could not set net.ipv4.tcp_migrate_req=1: switches behind Caddy may reset a connection" >&2
fi
echo "test infrastructure ready"
