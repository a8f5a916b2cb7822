#!/usr/bin/env bash
# Installs the system packages the test suite needs and starts what must run.
# Idempotent: does nothing for what is already there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ -x "$here/install-docker.sh" ] || [ -f "$here/install-docker.sh" ]; then
  bash "$here/install-docker.sh"
fi
# The process runtime sets replica limits with util-linux's prlimit (Essential on Debian; checked anyway).
if ! command -v prlimit >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq util-linux
fi
