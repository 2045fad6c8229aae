#!/usr/bin/env bash
# Usage: test/infra/python-image.sh
# The base image of the Python example's Dockerfile (examples/python) for the docker tests:
# local/python-base:12, Debian 12 with Debian's python3 packages of the example (FastAPI, uvicorn,
# Alembic, SQLAlchemy, psycopg2, venv) and a user `app` (1000). No registry is reachable here, so
# it is built from Debian's mirror (mmdebstrap, ~30 s) as test/infra/systemd-host.sh does; a user
# builds FROM python:3.11-slim instead (docs/python.md). Does nothing when an image of the current
# recipe is there. Needs root (mmdebstrap) and a running dockerd (test/infra/docker.sh).
set -euo pipefail

IMAGE=local/python-base:12
MIRROR=http://deb.debian.org/debian
PACKAGES=python3,python3-venv,python3-fastapi,python3-uvicorn,python3-alembic,python3-sqlalchemy,python3-psycopg2,ca-certificates
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

customize() {
  local tree=$1
  chroot "$tree" useradd --uid 1000 --user-group --home-dir /app --no-create-home --shell /usr/sbin/nologin app
  install -d -o 1000 -g 1000 "$tree/app" "$tree/data"
  rm -rf "$tree"/var/lib/apt/lists/* "$tree"/var/cache/apt/* "$tree"/tmp/* "$tree"/usr/share/doc/* "$tree"/usr/share/man/*
}

recipe() { { echo "$PACKAGES $MIRROR"; declare -f customize; } | sha256sum | cut -c1-16; }

command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "dockerd is not running: run test/infra/docker.sh" >&2; exit 1; }
want=$(recipe)
have() { docker image inspect -f '{{index .Config.Labels "skiff.recipe"}}' "$IMAGE" 2>/dev/null || true; }
[ "$(have)" = "$want" ] && { echo "python image ready: $IMAGE"; exit 0; }
exec 9>/tmp/skiff-python-image.lock
flock 9
[ "$(have)" = "$want" ] && { echo "python image ready: $IMAGE"; exit 0; }
if ! command -v mmdebstrap >/dev/null; then
  echo "installing mmdebstrap"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mmdebstrap >/dev/null
fi
echo "building $IMAGE (recipe $want)"
work=$(mktemp -d /tmp/skiff-python-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
if ! $SUDO mmdebstrap --quiet --variant=apt --include="$PACKAGES" --skip=output/dev bookworm "$work/tree" "$MIRROR" >"$work/mmdebstrap.log" 2>&1; then
  echo "mmdebstrap failed:" >&2
  tail -n 20 "$work/mmdebstrap.log" >&2
  exit 1
fi
customize "$work/tree"
previous=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
tar -C "$work/tree" --numeric-owner -c . |
  docker import -c "LABEL skiff.recipe=$want" -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8' - "$IMAGE" >/dev/null
[ -z "$previous" ] || docker rmi "$previous" >/dev/null 2>&1 || true
echo "built $IMAGE"
