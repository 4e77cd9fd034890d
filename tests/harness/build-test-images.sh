#!/usr/bin/env bash
# Build the images the Molecule scenarios start as "bare hosts", for each Debian release they run:
#   cloudburst/debian:<suite>     pulled debian:<suite>, or made with debootstrap
#   cloudburst/bare-host:<suite>  that base plus python3, nothing else
# Suites: bookworm (Debian 12) and trixie (Debian 13); CLOUDBURST_TEST_SUITES="bookworm" builds one.
set -euo pipefail

SUITES=${CLOUDBURST_TEST_SUITES:-bookworm trixie}
MIRROR=${CLOUDBURST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
here=$(cd "$(dirname "$0")" && pwd)

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
  local suite=$1 image=cloudburst/debian:$1
  have_image "$image" && return
  if timeout 30 docker pull -q "debian:$suite" >/dev/null 2>&1; then
    docker tag "debian:$suite" "$image"
    return
  fi
  echo "harness: no registry reachable; creating $image with debootstrap"
  command -v debootstrap >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  local rootfs
  rootfs=$(mktemp -d)
  debootstrap --variant=minbase "$suite" "$rootfs" "$MIRROR" >/dev/null
  tar -C "$rootfs" -c . | docker import - "$image" >/dev/null
  rm -rf "$rootfs"
}

# Rebuilt whenever its build context changes (the label records the context's hash).
build_bare_host() {
  local suite=$1 image=cloudburst/bare-host:$1 context_hash built_hash
  context_hash=$(cd "$here/bare-host" && sha256sum -- * | sha256sum | cut -c1-16)
  built_hash=$(docker image inspect -f '{{ index .Config.Labels "cloudburst.context" }}' "$image" 2>/dev/null || true)
  if [[ $built_hash != "$context_hash" ]]; then
    echo "harness: building $image"
    DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=cloudburst/debian:$suite" \
      --label "cloudburst.context=$context_hash" -t "$image" "$here/bare-host" >/dev/null
  fi
}

for suite in $SUITES; do
  build_base "$suite"
  build_bare_host "$suite"
done
