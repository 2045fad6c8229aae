#!/usr/bin/env bash
# Usage: test/infra/ensure.sh (run by `npm test` before the tests: package.json "pretest")
# Everything the tests need on this machine, installed and started when missing and left alone when
# there: the project's npm packages, Debian packages (up.sh), a Docker engine with the base image
# (docker.sh), the Python example's base image (python-image.sh), and the systemd host image (systemd-host.sh build). A second run takes about a second.
set -euo pipefail
cd "$(dirname "$0")/../.."

[ -x node_modules/.bin/vitest ] || npm ci --no-audit --no-fund
bash test/infra/up.sh
bash test/infra/docker.sh
bash test/infra/python-image.sh
bash test/infra/systemd-host.sh build
