#!/usr/bin/env bash
# Build the container image from ./Dockerfile (the file users build): with docker when a daemon answers,
# else with buildah, which needs no daemon (apt-get install buildah).
#   TAG=...   image name (default localhost/dcp-emulator)
#   BASE=...  base image (the Dockerfile's default: python:3.12-slim). BASE=debootstrap makes a Debian base
#             without any registry (apt-get install debootstrap; root): built once, then reused from
#             buildah's storage, its root file system cached in $DCP_EMULATOR_CI_CACHE.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${TAG:-localhost/dcp-emulator}
BASE=${BASE:-}
CACHE=${DCP_EMULATOR_CI_CACHE:-/var/cache/dcp-emulator-ci}
B=(buildah --storage-driver vfs)

if [ -z "${FORCE_BUILDAH:-}" ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  [ "$BASE" = debootstrap ] && BASE=
  exec docker build ${BASE:+--build-arg "BASE=$BASE"} -t "$TAG" .
fi
if ! command -v buildah >/dev/null 2>&1; then
  echo "make image: no docker daemon answers and buildah is not installed (apt-get install buildah)" >&2
  exit 1
fi

if [ "$BASE" = debootstrap ]; then
  BASE=localhost/dcp-base
  if ! "${B[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
    mkdir -p "$CACHE"
    rootfs_tar="$CACHE/bookworm-minbase-python3.tar"
    if [ ! -s "$rootfs_tar" ]; then
      echo "image.sh: debootstrap of a Debian bookworm base (once; cached in $rootfs_tar)" >&2
      tmp=$(mktemp -d "$CACHE/rootfs.XXXXXX")
      debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$tmp/rootfs" \
        >"$tmp/debootstrap.log" 2>&1 || { tail -20 "$tmp/debootstrap.log" >&2; exit 1; }
      tar -C "$tmp/rootfs" -cf "$rootfs_tar.part" . && mv "$rootfs_tar.part" "$rootfs_tar"
      rm -rf "$tmp"
    fi
    c=$("${B[@]}" from scratch)
    m=$("${B[@]}" mount "$c")
    tar -C "$m" -xf "$rootfs_tar"
    "${B[@]}" umount "$c" >/dev/null
    "${B[@]}" commit -q "$c" "$BASE" >/dev/null
    "${B[@]}" rm "$c" >/dev/null
  fi
fi

previous=$("${B[@]}" inspect --type image --format '{{.FromImageID}}' "$TAG" 2>/dev/null || true)
# The CA bundle lets pip inside the build reach the package index the way the host does; --format docker
# keeps HEALTHCHECK (the OCI format drops it); chroot isolation needs no user namespaces.
"${B[@]}" bud --format docker --isolation chroot \
  -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
  ${BASE:+--build-arg "BASE=$BASE"} -t "$TAG" .
# vfs stores every layer in full: drop the image this tag named before (CI rebuilds it on every run).
current=$("${B[@]}" inspect --type image --format '{{.FromImageID}}' "$TAG")
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  "${B[@]}" rmi "$previous" >/dev/null 2>&1 || true
fi
