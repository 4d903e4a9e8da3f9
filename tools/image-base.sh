#!/usr/bin/env bash
# Prepare this machine to build and run the yiwang image with podman, as verified on these machines (docs/infra.md, "Render → run and the image"):
#   1. (root) Debian packages podman, runc, mmdebstrap, slirp4netns, if missing;
#   2. (root) /etc/containers/containers.conf: runc (crun fails here), cgroupfs, ulimits podman may set;
#   3. a Debian bookworm base made locally with mmdebstrap (no public registry is reachable), with
#      this machine's extra CA certificates inside so pip/apt through the intercepting proxy work;
#      the tarball is cached in $CACHE (default .tools/images) so reruns skip mmdebstrap;
#   4. `podman import` of it as $BASE_IMAGE (default localhost/debian:bookworm), if not present.
# Prints the base image name on its last line. Idempotent.
set -euo pipefail
BASE_IMAGE=${BASE_IMAGE:-localhost/debian:bookworm}
CACHE=${CACHE:-.tools/images}
TARBALL="$CACHE/debian-bookworm-minbase.tar"

if [ "$(id -u)" != 0 ]; then
  echo "tools/image-base.sh needs root (apt-get, rootful podman)" >&2
  exit 3
fi
missing=""
for pkg in podman runc mmdebstrap slirp4netns; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

conf=/etc/containers/containers.conf
if ! grep -q 'runtime = "runc"' "$conf" 2>/dev/null; then
  nofile=$(ulimit -Hn)
  if [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ]; then nofile=65536; fi
  mkdir -p /etc/containers
  cat >"$conf" <<CONF
# written by yiwang tools/image-base.sh: runc (crun fails here), cgroupfs, ulimits podman may set
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
fi

if ! podman image exists "$BASE_IMAGE"; then
  if [ ! -s "$TARBALL" ]; then
    mkdir -p "$CACHE"
    # the mirrors apt already uses on this machine
    mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    security=$(awk '/^URIs:/ && $2 ~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    security=${security:-http://deb.debian.org/debian-security}
    hooks=()
    for crt in /usr/local/share/ca-certificates/*.crt; do
      [ -e "$crt" ] || continue
      hooks+=(--customize-hook="mkdir -p \"\$1/usr/local/share/ca-certificates\"")
      hooks+=(--customize-hook="cp $crt \"\$1/usr/local/share/ca-certificates/\"")
    done
    tmp="$CACHE/partial-$$.tar"
    mmdebstrap --quiet --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      "${hooks[@]}" bookworm "$tmp" \
      "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
      "deb $security bookworm-security main"
    mv "$tmp" "$TARBALL"
  fi
  podman import --quiet "$TARBALL" "$BASE_IMAGE" >/dev/null
fi
echo "$BASE_IMAGE"
