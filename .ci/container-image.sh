#!/usr/bin/env bash
# Builds the Scatter image without a registry: the base from Debian's own packages (libc6 and
# libgcc-s1, unpacked with dpkg-deb and `docker import`ed as scatter-base:bookworm; the host's
# copies of the same libraries when the package archive cannot be reached), then the
# Dockerfile's `prebuilt` stage with BINARY (stripped) as /usr/local/bin/scatter.
#
#   .ci/container-image.sh [BINARY [TAG]]     default: target/release/scatter, scatter:latest
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/release/scatter}
tag=${2:-scatter:latest}
base=scatter-base:bookworm

if ! docker image inspect "$base" >/dev/null 2>&1; then
  root=$(mktemp -d)
  debs=$(mktemp -d)
  trap 'rm -rf "$root" "$debs"' EXIT
  if (cd "$debs" && apt-get download -qq libc6 libgcc-s1 >/dev/null 2>&1); then
    for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
    echo "base: $(cd "$debs" && ls *.deb | tr '\n' ' ')"
  else
    echo "base: the package archive is unreachable; copying the host's libraries"
    mkdir -p "$root/lib64" "$root/lib/x86_64-linux-gnu"
    for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do cp -L "$lib" "$root$lib"; done
  fi
  mkdir -p "$root/tmp" "$root/etc" "$root/data"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/nonexistent\nscatter:x:10001:10001:scatter:/data:/nonexistent\n' >"$root/etc/passwd"
  printf 'root:x:0:\nscatter:x:10001:\n' >"$root/etc/group"
  tar -C "$root" -c . | docker import - "$base" >/dev/null
  echo "imported $base"
fi

mkdir -p target/docker
strip -o target/docker/scatter "$binary"
docker build -q --build-arg BASE="$base" --target prebuilt -t "$tag" . >/dev/null
echo "built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%d MB", $1/1e6}'))"
