#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine: install Debian's docker.io
# and start dockerd in the background when absent (root on Debian only).
set -euo pipefail

if docker info >/dev/null 2>&1; then
  exit 0
fi

if [[ $(id -u) -ne 0 ]] || ! grep -qi debian /etc/os-release; then
  echo "No Docker engine answers here; start one (docker info must work) and run the tests again." >&2
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  echo "harness: installing docker.io"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "harness: starting dockerd in the background (log: /var/log/dockerd.log)"
  nohup dockerd >/var/log/dockerd.log 2>&1 &
fi

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    exit 0
  fi
  sleep 1
done
echo "dockerd did not answer within 60 s; see /var/log/dockerd.log." >&2
exit 1
