#!/usr/bin/env bash
# base-image.sh: make a Node.js base image without pulling from any registry.
#
# debootstrap a minimal Debian (--variant=minbase, same release as this machine) from
# the configured apt mirror, copy this machine's node and npm in (node's libraries come
# from that Debian), and import the folder as an image. The rootfs tarball is cached,
# keyed by Debian release, Node.js version and this script's contents, so only the first
# run pays for debootstrap. Pass the tag to the Dockerfile as --build-arg BASE_IMAGE.
#
# Usage: base-image.sh [--tag TAG] [--cache DIR] [--engine docker|podman] [--tar-only]
#   --tag     image name (default berth-base:local)
#   --cache   tarball cache (default $BERTH_CI_CACHE or /var/cache/berth-ci)
#   --engine  where to import (default docker; podman's store is also buildah's)
#   --tar-only  build or reuse the cached tarball, print its path, import nothing
# Env: BERTH_DEBIAN_MIRROR overrides the mirror found in /etc/apt/sources.list*.
# Needs root (debootstrap, chroot), debootstrap, tar, and node/npm on PATH.
set -euo pipefail
TAG=berth-base:local; CACHE=${BERTH_CI_CACHE:-/var/cache/berth-ci}; ENGINE=docker; TAR_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG=$2; shift 2;;
    --cache) CACHE=$2; shift 2;;
    --engine) ENGINE=$2; shift 2;;
    --tar-only) TAR_ONLY=1; shift;;
    *) echo "base-image: unknown argument $1" >&2; exit 2;;
  esac
done
case "$ENGINE" in docker|podman) ;; *) echo "base-image: --engine must be docker or podman" >&2; exit 2;; esac
log() { echo "base-image: $*" >&2; }

NODE=$(readlink -f "$(command -v node)")
NODE_VERSION=$(node --version)
NPM_DIR=$(readlink -f "$(dirname "$(readlink -f "$(command -v npm)")")/..")
[ -f "$NPM_DIR/package.json" ] || { log "cannot find npm's package folder (got $NPM_DIR)"; exit 1; }
# shellcheck disable=SC1091
SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
mirror() {
  if [ -n "${BERTH_DEBIAN_MIRROR:-}" ]; then echo "$BERTH_DEBIAN_MIRROR"; return; fi
  # first Debian archive URI in the apt sources (deb822 "URIs:" or one-line "deb URI ...")
  local m
  m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
    | sed -n -E 's#^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)(https?://[^[:space:]]*/debian/?)([[:space:]].*)?$#\3#p' | head -1)
  echo "${m:-http://deb.debian.org/debian}"
}
KEY="$SUITE-node${NODE_VERSION#v}-$(sha256sum "$0" | cut -c1-12)"
TARBALL="$CACHE/berth-base-$KEY.tar"

image_key() {
  "$ENGINE" image inspect --format '{{index .Config.Labels "org.berth.base"}}' "$TAG" 2>/dev/null || true
}
if [ "$TAR_ONLY" = 0 ] && [ "$(image_key)" = "$KEY" ]; then log "$TAG is current ($KEY)"; echo "$TAG"; exit 0; fi

if [ ! -s "$TARBALL" ]; then
  command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
  mkdir -p "$CACHE"
  ROOTFS=$(mktemp -d /tmp/berth-rootfs.XXXXXX)
  trap 'rm -rf "$ROOTFS"' EXIT
  MIRROR=$(mirror)
  log "debootstrap $SUITE from $MIRROR into $ROOTFS"
  start=$(date +%s)
  # libstdc++6 and libgcc-s1 are what node links besides libc (see ldd).
  debootstrap --variant=minbase --include=libstdc++6,libgcc-s1 "$SUITE" "$ROOTFS" "$MIRROR" > "$ROOTFS.log" 2>&1 \
    || { tail -20 "$ROOTFS.log" >&2; rm -f "$ROOTFS.log"; exit 1; }
  rm -f "$ROOTFS.log"
  log "debootstrap took $(( $(date +%s) - start ))s"
  install -m 0755 "$NODE" "$ROOTFS/usr/local/bin/node"
  mkdir -p "$ROOTFS/usr/local/lib/node_modules"
  cp -a "$NPM_DIR" "$ROOTFS/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
  # node must run inside with that Debian's libraries only
  chroot "$ROOTFS" /usr/local/bin/node -e 'require("node:crypto").createHash("sha256"); process.exit(0)' \
    || { log "node does not run inside the rootfs; missing libraries?"; chroot "$ROOTFS" /usr/bin/ldd /usr/local/bin/node >&2 || true; exit 1; }
  # what only a package manager or a human needs
  rm -rf "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* \
    "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/log/*
  tar --numeric-owner -C "$ROOTFS" -cf "$TARBALL.tmp.$$" .
  mv "$TARBALL.tmp.$$" "$TARBALL"
  log "cached $TARBALL ($(du -h "$TARBALL" | cut -f1))"
fi
if [ "$TAR_ONLY" = 1 ]; then echo "$TARBALL"; exit 0; fi

"$ENGINE" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "LABEL org.berth.base=$KEY" \
  --change 'CMD ["node"]' \
  "$TARBALL" "$TAG" >/dev/null
log "imported $TAG into $ENGINE"
echo "$TAG"
