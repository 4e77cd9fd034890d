#!/usr/bin/env bash
# Debian's servers the Python tests start on loopback: InfluxDB 1.x, Redis, Nginx.
# Installed only (not started): each test session starts its own instances on free ports.
set -euo pipefail
missing=()
command -v influxd >/dev/null || missing+=(influxdb)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nginx >/dev/null || missing+=(nginx-light)
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "Install ${missing[*]} (Debian packages) to run the tests." >&2
    exit 1
  fi
  echo "harness: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
