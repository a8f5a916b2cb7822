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
# The metrics tests start their own Prometheus server (tests/integration/test_metrics_prometheus.py): Debian's
# package provides prometheus and promtool. Its own service is not started here (no init system in CI containers;
# where there is one, policy-rc.d keeps the package's postinst from starting it).
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  apt-get update -qq
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.sutradhar
  chmod +x /usr/sbin/policy-rc.d.sutradhar
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    mv /usr/sbin/policy-rc.d.sutradhar /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  else
    rm -f /usr/sbin/policy-rc.d.sutradhar
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus
fi
# The wire tests' Node peers (tests/peers/node, run by tests/integration/test_router_node_peers.py, which runs
# `npm ci` there from the lock file): Debian's nodejs and npm, each only where it is missing (a Node install from
# elsewhere that ships its own npm is left alone).
node_packages=()
command -v node >/dev/null 2>&1 || node_packages+=(nodejs)
command -v npm >/dev/null 2>&1 || node_packages+=(npm)
if [ "${#node_packages[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${node_packages[@]}"
fi
# The wire test's Java peer (tests/peers/java, run by tests/integration/test_router_java_peer.py): a JDK and
# Debian's protobuf-java, each only where it is missing.
java_packages=()
command -v javac >/dev/null 2>&1 || java_packages+=(default-jdk-headless)
[ -e /usr/share/java/protobuf.jar ] || java_packages+=(libprotobuf-java)
if [ "${#java_packages[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${java_packages[@]}"
fi
