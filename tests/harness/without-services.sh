#!/usr/bin/env bash
# Run a command where no service can start: in a mount namespace whose Redis, InfluxDB, Nginx and Docker binaries
# (and Docker's socket) answer "hidden". `make pytest-pure` runs the tests not marked `services` so: a test that
# needs a service without saying so fails here. Without root or unshare, the command runs as it is (and says so).
set -euo pipefail
if [[ $(id -u) -ne 0 ]] || ! command -v unshare >/dev/null; then
  echo "without-services: not root or no unshare; running with the services this machine has" >&2
  exec "$@"
fi
hidden=$(mktemp)
printf '#!/bin/sh\necho "$0 is hidden: this test run is without services" >&2\nexit 127\n' > "$hidden"
chmod +x "$hidden"
empty=$(mktemp)
trap 'rm -f "$hidden" "$empty"' EXIT
unshare --mount bash -c '
  set -euo pipefail
  mount --make-rprivate /
  for binary in redis-server influxd nginx docker dockerd; do
    if path=$(command -v "$binary"); then mount --bind "$1" "$path"; fi
  done
  if [[ -e /var/run/docker.sock ]]; then mount --bind "$2" /var/run/docker.sock; fi
  shift 2
  exec "$@"
' without-services "$hidden" "$empty" "$@"
