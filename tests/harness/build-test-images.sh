#!/usr/bin/env bash
# Build the images the Molecule scenarios start as "bare hosts":
#   cloudburst/debian:bookworm     pulled debian:bookworm, or made with debootstrap
#   cloudburst/bare-host:bookworm  that base plus python3, nothing else
set -euo pipefail

BASE_IMAGE=${CLOUDBURST_BASE_IMAGE:-cloudburst/debian:bookworm}
BARE_HOST_IMAGE=${CLOUDBURST_BARE_HOST_IMAGE:-cloudburst/bare-host:bookworm}
MIRROR=${CLOUDBURST_DEBIAN_MIRROR:-http://deb.debian.org/debian}
here=$(cd "$(dirname "$0")" && pwd)

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

if ! have_image "$BASE_IMAGE"; then
  if timeout 30 docker pull -q debian:bookworm >/dev/null 2>&1; then
    docker tag debian:bookworm "$BASE_IMAGE"
  else
    echo "harness: no registry reachable; creating $BASE_IMAGE with debootstrap"
    command -v debootstrap >/dev/null || {
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    }
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >/dev/null
    tar -C "$rootfs" -c . | docker import - "$BASE_IMAGE" >/dev/null
  fi
fi

# Rebuilt whenever its build context changes (the label records the context's hash).
context_hash=$(cd "$here/bare-host" && sha256sum -- * | sha256sum | cut -c1-16)
built_hash=$(docker image inspect -f '{{ index .Config.Labels "cloudburst.context" }}' "$BARE_HOST_IMAGE" 2>/dev/null || true)
if [[ $built_hash != "$context_hash" ]]; then
  echo "harness: building $BARE_HOST_IMAGE"
  DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$BASE_IMAGE" --label "cloudburst.context=$context_hash" \
    -t "$BARE_HOST_IMAGE" "$here/bare-host" >/dev/null
fi
