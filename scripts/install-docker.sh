#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, installing and starting it
# when needed. Idempotent: on a machine where `docker info` already works it
# only says so.
#
#   scripts/install-docker.sh          # install docker.io + debootstrap, start dockerd
#   SUTRADHAR_DOCKERD_WAIT=60 scripts/install-docker.sh
#
# What it does, in order, each step only when needed:
#   1. apt-get install Debian's `docker.io` (the engine and client) and
#      `debootstrap` (to build the Python base image without a registry;
#      see docs/containers.md). Needs root.
#   2. start `dockerd` in the background when no engine answers, logging to
#      $SUTRADHAR_DOCKERD_LOG (default /var/log/sutradhar-dockerd.log), and wait
#      (at most $SUTRADHAR_DOCKERD_WAIT seconds, default 30) until `docker info`
#      works.
# Exits non-zero with a message naming the failed step.
set -euo pipefail

LOG="${SUTRADHAR_DOCKERD_LOG:-/var/log/sutradhar-dockerd.log}"
WAIT="${SUTRADHAR_DOCKERD_WAIT:-30}"

say() { echo "install-docker: $*"; }
fail() { echo "install-docker: error: $*" >&2; exit 1; }

engine_up() { docker info >/dev/null 2>&1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else
    fail "need root for: $* (run this script as root, or install docker.io yourself)"
  fi
}

# 1. packages
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  # de-duplicate (docker.io may be listed twice)
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  say "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq || fail "apt-get update failed"
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || fail "apt-get install ${missing[*]} failed"
else
  say "docker.io and debootstrap already installed"
fi
command -v docker >/dev/null 2>&1 || fail "the docker client is still missing after installing docker.io"

# 2. engine
if engine_up; then
  say "a Docker engine already answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  fail "no Docker engine answers and starting dockerd needs root (run: sudo $0)"
fi
if pgrep -x dockerd >/dev/null 2>&1; then
  say "dockerd runs but does not answer yet; waiting"
else
  mkdir -p "$(dirname "$LOG")"
  say "starting dockerd in the background (log: $LOG)"
  # setsid: the daemon must outlive this script and the shell (or test run) that called it.
  setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
fi
deadline=$((SECONDS + WAIT))
until engine_up; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "--- last lines of $LOG ---" >&2
    tail -n 20 "$LOG" >&2 2>/dev/null || true
    fail "dockerd did not answer within ${WAIT}s (see $LOG)"
  fi
  sleep 0.5
done
say "Docker engine ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'), storage $(docker info --format '{{.Driver}}' 2>/dev/null || echo '?'))"
