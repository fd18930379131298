#!/usr/bin/env bash
# Build the sandbox base image without any container registry:
# debootstrap a minimal Debian bookworm (python3, pytest, pip, git, patch) and `docker import` it.
# Needs root, debootstrap and a Debian mirror (deb.debian.org or DEBIAN_MIRROR).
#   docker/build_base_offline.sh [IMAGE]        (default swesrl/base:latest; FORCE=1 rebuilds)
set -euo pipefail

IMAGE="${1:-swesrl/base:latest}"
SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PACKAGES="python3,python3-pytest,python3-pip,git,patch,ca-certificates,procps,less"
HOST_CA="${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "image $IMAGE exists (FORCE=1 rebuilds)"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "error: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "error: no Docker daemon reachable" >&2; exit 1; }

root="$(mktemp -d /var/tmp/swesrl-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT

echo "debootstrap $SUITE from $MIRROR into $root ..."
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 \
  || { tail -20 "$root.log" >&2; echo "error: debootstrap failed (log: $root.log)" >&2; exit 1; }
rm -f "$root.log"

# A corporate / proxy CA (the host's bundle) so pip and git inside the sandbox trust it.
if [ -f "$HOST_CA" ]; then
  cp "$HOST_CA" "$root/etc/ssl/certs/ca-certificates.crt"
fi
mkdir -p "$root/testbed" "$root/run/swesrl"
chroot "$root" git config --system --add safe.directory '*'
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/*
ln -sf /usr/bin/python3 "$root/usr/local/bin/python"

echo "docker import -> $IMAGE ..."
tar --numeric-owner -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'WORKDIR /testbed' \
  -c 'CMD ["/bin/bash"]' \
  -m "swesrl sandbox base (debootstrap $SUITE)" - "$IMAGE" >/dev/null
echo "built $IMAGE"
