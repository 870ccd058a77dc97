#!/usr/bin/env bash
# Builds an arm64 (aarch64) sysroot for cross-compiling edgelens on an amd64 Debian 12 machine,
# without touching the machine's own dpkg: arm64 -dev packages do not co-install with the amd64
# ones (libgstreamer-plugins-base1.0-dev is not Multi-Arch), so apt resolves the arm64 packages in
# a private state folder, downloads them, and `dpkg-deb -x` unpacks them into the sysroot.
#
# Usage:
#   scripts/arm64-sysroot.sh [DIR]          build (idempotent; default DIR:
#                                           ~/.cache/edgelens/arm64-sysroot, or $EDGELENS_ARM64_SYSROOT)
#   eval "$(scripts/arm64-sysroot.sh --env [DIR])"
#                                           print the cargo/pkg-config exports for
#                                           `cargo {check,build} --target aarch64-unknown-linux-gnu`
# Also used inside Dockerfile.arm64v8's build stage.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
# What the gstreamer crates link against (pkg-config), plus the C library itself.
# Outside the clone, at a fixed path: the path is part of the pkg-config environment that the
# gstreamer -sys build scripts watch, so a per-clone path would recompile them in every new clone.
DEFAULT_DIR="${EDGELENS_ARM64_SYSROOT:-$HOME/.cache/edgelens/arm64-sysroot}"
PACKAGES=(libc6-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev)

log() { printf '[arm64-sysroot] %s\n' "$*" >&2; }

print_env() {
  local s="$1"
  cat <<EOF
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_SYSROOT_DIR='$s'
export PKG_CONFIG_LIBDIR='$s/usr/lib/aarch64-linux-gnu/pkgconfig:$s/usr/share/pkgconfig:$s/usr/lib/pkgconfig'
export PKG_CONFIG_PATH='$s/usr/lib/aarch64-linux-gnu/pkgconfig:$s/usr/share/pkgconfig'
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS='-C link-arg=--sysroot=$s'
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
EOF
}

if [ "${1:-}" = --env ]; then
  dir="${2:-$DEFAULT_DIR}"
  print_env "$(cd "$(dirname "$dir")" 2>/dev/null && pwd)/$(basename "$dir")"
  exit 0
fi

DIR="${1:-$DEFAULT_DIR}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
[ "$DIR" != / ] || { log "refusing to use / as the sysroot"; exit 2; }
STAMP="$DIR/.edgelens-sysroot"
want="$SUITE ${PACKAGES[*]} v1"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  log "up to date: $DIR"
  exit 0
fi

# The cross compiler (and its libc headers for C build scripts such as ring's).
need=()
for p in gcc-aarch64-linux-gnu libc6-dev-arm64-cross pkg-config; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  log "installing ${need[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

t0=$SECONDS
APTROOT="$(mktemp -d "${TMPDIR:-/tmp}/arm64-apt.XXXXXX")"
trap 'rm -rf "$APTROOT"' EXIT
mkdir -p "$APTROOT"/{lists/partial,archives/partial,etc/preferences.d}
: >"$APTROOT/status"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
cat >"$APTROOT/etc/sources.list" <<EOF
deb [arch=arm64 signed-by=$KEYRING] $MIRROR $SUITE main
deb [arch=arm64 signed-by=$KEYRING] $MIRROR $SUITE-updates main
deb [arch=arm64 signed-by=$KEYRING] ${MIRROR%/debian}/debian-security $SUITE-security main
EOF
APT=(apt-get -q
  -o APT::Architecture=arm64 -o APT::Architectures::=arm64
  -o Dir::State::Lists="$APTROOT/lists" -o Dir::State::status="$APTROOT/status"
  -o Dir::Cache="$APTROOT" -o Dir::Cache::archives="$APTROOT/archives"
  -o Dir::Cache::pkgcache="" -o Dir::Cache::srcpkgcache=""
  -o Dir::Etc::SourceList="$APTROOT/etc/sources.list" -o Dir::Etc::SourceParts=/nonexistent
  -o Dir::Etc::Preferences=/nonexistent -o Dir::Etc::PreferencesParts="$APTROOT/etc/preferences.d"
  -o Debug::NoLocking=1 -o APT::Sandbox::User=root -o Acquire::Languages=none)
"${APT[@]}" update >/dev/null
# With an empty status file apt resolves the whole dependency closure.
"${APT[@]}" install -y --download-only --no-install-recommends "${PACKAGES[@]}" >/dev/null

rm -rf "$DIR.tmp"
mkdir -p "$DIR.tmp"
n=0
for deb in "$APTROOT"/archives/*.deb; do
  dpkg-deb -x "$deb" "$DIR.tmp"
  n=$((n + 1))
done
# Absolute symlinks would point into the build machine: make them relative to the sysroot.
while IFS= read -r link; do
  target="$(readlink "$link")"
  rel="$(realpath -m --relative-to="$(dirname "$link")" "$DIR.tmp$target")"
  ln -sfn "$rel" "$link"
done < <(find "$DIR.tmp" -type l -lname '/*')
printf '%s' "$want" >"$DIR.tmp/.edgelens-sysroot"
rm -rf "$DIR"
mv "$DIR.tmp" "$DIR"
log "$n arm64 packages unpacked into $DIR ($(du -sh "$DIR" | cut -f1)) in $((SECONDS - t0)) s"
