#!/usr/bin/env bash
# Makes, without any registry, the three base images the Dockerfiles start FROM, and the
# buildah/podman settings this machine needs (no Docker engine, no image pulls).
#
#   docker.io/amd64/debian:bookworm-slim    debootstrap --variant=minbase (amd64)
#   docker.io/arm64v8/debian:bookworm-slim  debootstrap --foreign + second stage under qemu (arm64)
#   docker.io/library/rust:1.95-bookworm    amd64 build-tool image: the amd64 base + gcc/pkg-config/
#                                           python3-pip + THIS machine's rustup toolchain (same layout
#                                           as the official image: /usr/local/{rustup,cargo})
#
# Where a registry is reachable these are the official images of the same names, and this script
# is not needed. Idempotent: an image that exists is kept (--force remakes it).
#
# Usage:
#   scripts/make-base-images.sh [--force] [amd64] [arm64] [rust]   (default: all three)
#   eval "$(scripts/make-base-images.sh --env)"                     (settings only, prints exports)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONF_DIR="$ROOT/.deps/containers"
# Image storage lives outside the clone (like the cargo target dir) so CI runs keep it.
STORE="${EDGELENS_CONTAINERS_DIR:-$HOME/.cache/edgelens/containers}"
SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# The image names are the Dockerfiles' defaults.
arg_default() { sed -n "s/^ARG $1=//p" "$ROOT/$2" | head -n1; }
IMG_AMD64="$(arg_default BASE_IMAGE Dockerfile.amd64)"
IMG_ARM64="$(arg_default BASE_IMAGE Dockerfile.arm64v8)"
IMG_RUST="$(arg_default RUST_IMAGE Dockerfile.amd64)"
RUST_VERSION="$(rustc --version 2>/dev/null | awk '{print $2}')" || true
RUST_VERSION="${RUST_VERSION:-unknown}"

log() { printf '[base-images] %s\n' "$*" >&2; }

# overlay where the kernel mounts it (no copy per layer; this machine: yes), else vfs, the driver
# that works everywhere (DESIGN.md §2) but copies the whole rootfs for every layer.
pick_driver() {
  if [ -n "${EDGELENS_STORAGE_DRIVER:-}" ]; then echo "$EDGELENS_STORAGE_DRIVER"; return; fi
  local t
  t="$(mktemp -d "$STORE/tmp/ovl-probe.XXXXXX")"
  mkdir -p "$t"/{l,u,w,m}
  if mount -t overlay overlay -o "lowerdir=$t/l,upperdir=$t/u,workdir=$t/w" "$t/m" 2>/dev/null; then
    umount "$t/m"
    echo overlay
  else
    echo vfs
  fi
  rm -rf "$t"
}

write_conf() {
  mkdir -p "$CONF_DIR" "$STORE/tmp"
  local driver
  driver="$(pick_driver)"
  mkdir -p "$STORE/storage-$driver"
  # Checked settings for this kind of machine (DESIGN.md §2 "Containers").
  cat >"$CONF_DIR/storage.conf.tmp" <<EOF
[storage]
driver = "$driver"
graphroot = "$STORE/storage-$driver"
runroot = "$STORE/run-$driver"
EOF
  cat >"$CONF_DIR/containers.conf.tmp" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
  for f in storage.conf containers.conf; do
    if cmp -s "$CONF_DIR/$f.tmp" "$CONF_DIR/$f"; then rm "$CONF_DIR/$f.tmp"; else mv "$CONF_DIR/$f.tmp" "$CONF_DIR/$f"; fi
  done
}

print_env() {
  cat <<EOF
export CONTAINERS_CONF='$CONF_DIR/containers.conf'
export CONTAINERS_STORAGE_CONF='$CONF_DIR/storage.conf'
export BUILDAH_ISOLATION=chroot
export TMPDIR='$STORE/tmp'
EOF
}

ensure_tools() {
  local need=() p
  for p in buildah podman skopeo runc debootstrap qemu-user-static binfmt-support; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  if ((${#need[@]})); then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

# arm64 binaries run through qemu-user via binfmt_misc ("F" flag: works inside chroots too).
ensure_binfmt() {
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64
  fi
}

# debootstrap's second stage mounts proc/sys inside the rootfs; never delete through a mount.
unmount_under() {
  local m
  for m in $(awk -v d="$1/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$m" || true
  done
}

# Leftovers of an interrupted earlier run.
clean_stale() {
  local d
  for d in "$STORE"/tmp/rootfs-* "$STORE"/tmp/rust.*; do
    [ -e "$d" ] || continue
    unmount_under "$d"
    rm -rf "$d"
  done
}

have_image() { buildah images --quiet "$1" >/dev/null 2>&1 && [ -n "$(buildah images --quiet "$1" 2>/dev/null)" ]; }

# Makes a rootfs look like the official -slim images: no docs, man pages or locales, and apt
# that cleans its caches after itself.
slim_rootfs() {
  local dir="$1"
  mkdir -p "$dir/etc/dpkg/dpkg.cfg.d" "$dir/etc/apt/apt.conf.d"
  cat >"$dir/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  printf 'Acquire::Languages "none";\n' >"$dir/etc/apt/apt.conf.d/docker-no-languages"
  find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$dir"/usr/share/{man,info,groff,lintian,linda,locale}/* \
    "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
    "$dir"/var/log/* "$dir/debootstrap"
  : >"$dir/etc/resolv.conf"
  printf 'edgelens-base\n' >"$dir/etc/hostname"
}

make_debian() { # arch image
  local arch="$1" image="$2" dir
  dir="$(mktemp -d "$STORE/tmp/rootfs-$arch.XXXXXX")"
  local t0=$SECONDS
  if [ "$arch" = amd64 ]; then
    debootstrap --variant=minbase --arch=amd64 "$SUITE" "$dir" "$MIRROR" >"$dir.log" 2>&1 ||
      { tail -20 "$dir.log" >&2; return 1; }
  else
    ensure_binfmt
    debootstrap --variant=minbase --arch=arm64 --foreign "$SUITE" "$dir" "$MIRROR" >"$dir.log" 2>&1 ||
      { tail -20 "$dir.log" >&2; return 1; }
    chroot "$dir" /debootstrap/debootstrap --second-stage >>"$dir.log" 2>&1 ||
      { tail -20 "$dir.log" >&2; return 1; }
  fi
  # debootstrap's sources.list lacks updates and security; the official image has both.
  cat >"$dir/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
EOF
  unmount_under "$dir"
  slim_rootfs "$dir"
  tar -C "$dir" --numeric-owner -c . | podman import --quiet --arch "$arch" \
    --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$image" >/dev/null
  rm -rf "$dir" "$dir.log"
  log "$image made in $((SECONDS - t0)) s"
}

# The build-tool image: what the official rust image gives (gcc, libc6-dev, make, pkg-config, git,
# python3, rustup toolchain), taken from this machine's toolchain since rustup's own server is not a
# registry we may rely on. Adds the aarch64 std so the arm64 Dockerfile cross-compiles offline.
make_rust() {
  have_image "$IMG_AMD64" || make_debian amd64 "$IMG_AMD64"
  local want_tag="${IMG_RUST##*:}"
  case "$RUST_VERSION" in
    "${want_tag%%-*}".*) ;;
    *) log "warning: local rustc is $RUST_VERSION, the Dockerfiles name $IMG_RUST" ;;
  esac
  local t0=$SECONDS src stage ctr
  src="$(rustup toolchain list -v 2>/dev/null | awk -v v="$RUST_VERSION" '$1 ~ "^"v"-x86_64|^stable-x86_64" {print $NF; exit}')"
  src="${src:-$HOME/.rustup/toolchains/stable-x86_64-unknown-linux-gnu}"
  if [ ! -d "$src/lib/rustlib/aarch64-unknown-linux-gnu" ]; then
    rustup target add --toolchain "$(basename "$src")" aarch64-unknown-linux-gnu
  fi
  stage="$(mktemp -d "$STORE/tmp/rust.XXXXXX")"
  local tc="$stage/rustup/toolchains/$RUST_VERSION-x86_64-unknown-linux-gnu"
  mkdir -p "$tc" "$stage/cargo/bin"
  # Only what builds need: no docs (800 MB), no analyzer/miri/gdb helpers.
  tar -C "$src" --exclude=./share/doc --exclude=./share/man --exclude='./bin/rust-analyzer*' \
    --exclude='./bin/*miri*' --exclude='./bin/rust-gdb*' --exclude='./bin/rust-lldb' -c . | tar -C "$tc" -x
  cat >"$stage/rustup/settings.toml" <<EOF
version = "12"
default_toolchain = "$RUST_VERSION-x86_64-unknown-linux-gnu"
profile = "minimal"
auto_self_update = "disable"

[overrides]
EOF
  cp "$(command -v rustup)" "$stage/cargo/bin/rustup"
  local p
  for p in cargo rustc rustdoc rustfmt cargo-fmt cargo-clippy clippy-driver; do
    ln -s rustup "$stage/cargo/bin/$p"
  done
  ctr="$(buildah from --pull-never "$IMG_AMD64")"
  # Extra CAs this machine trusts (e.g. an egress proxy's): cargo and pip in RUN steps need them.
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    buildah run "$ctr" -- mkdir -p /usr/local/share/ca-certificates
    buildah copy "$ctr" /usr/local/share/ca-certificates/ /usr/local/share/ca-certificates/ >/dev/null
  fi
  buildah run "$ctr" -- sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates curl git gcc libc6-dev make pkg-config binutils python3 python3-pip xz-utils >/dev/null \
      && rm -rf /var/lib/apt/lists/*'
  buildah copy "$ctr" "$stage/rustup" /usr/local/rustup >/dev/null
  buildah copy "$ctr" "$stage/cargo" /usr/local/cargo >/dev/null
  buildah config --env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
    --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env RUST_VERSION="$RUST_VERSION" --cmd bash "$ctr"
  buildah run "$ctr" -- sh -c 'rustc --version && cargo --version' >&2
  buildah commit --quiet --rm "$ctr" "$IMG_RUST" >/dev/null
  rm -rf "$stage"
  log "$IMG_RUST made in $((SECONDS - t0)) s"
}

FORCE=0
want=()
for a in "$@"; do
  case "$a" in
    --env) write_conf; print_env; exit 0 ;;
    --force) FORCE=1 ;;
    amd64 | arm64 | rust) want+=("$a") ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) log "unknown argument $a"; exit 2 ;;
  esac
done
((${#want[@]})) || want=(amd64 arm64 rust)

[ "$(id -u)" = 0 ] || { log "needs root (debootstrap, chroot, binfmt_misc)"; exit 1; }
ensure_tools
write_conf
eval "$(print_env)"
clean_stale

for w in "${want[@]}"; do
  case "$w" in
    amd64) img="$IMG_AMD64" ;;
    arm64) img="$IMG_ARM64" ;;
    rust) img="$IMG_RUST" ;;
  esac
  if [ "$FORCE" = 1 ] || ! have_image "$img"; then
    case "$w" in
      amd64) make_debian amd64 "$img" ;;
      arm64) make_debian arm64 "$img" ;;
      rust) make_rust ;;
    esac
  else
    log "$img present"
  fi
done
