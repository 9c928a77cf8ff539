#!/bin/sh
# Sets up what linux-builder needs on a Debian/Ubuntu host, saying what it does; quick when
# nothing is missing. Installs apt packages as root or through sudo, npm dependencies, and
# initializes a single-user Nix store when there is none. With --tests (npm test), also what
# the tests alone need: debootstrap, for the Debian 13 stage.
set -eu
for_tests=false
[ "${1:-}" = --tests ] && for_tests=true
cd "$(dirname "$0")/.."
say() { printf 'setup: %s\n' "$*"; }

node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' || {
  say "Node.js >= 20.19 is required (found $(node --version))"; exit 1; }

case "$(uname -m)" in
  x86_64) qemu_pkg=qemu-system-x86; qemu_bin=qemu-system-x86_64 ;;
  aarch64|arm64) qemu_pkg=qemu-system-arm; qemu_bin=qemu-system-aarch64 ;;
  *) say "unsupported host architecture $(uname -m)"; exit 1 ;;
esac

missing=""
need() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ] || missing="$missing $2"; }
need "$qemu_bin" "$qemu_pkg"
# --arch aarch64 on an x86_64 host: the aarch64 guest runs on qemu-system-aarch64 under TCG
[ "$qemu_bin" = qemu-system-aarch64 ] || need qemu-system-aarch64 qemu-system-arm
need /bin/busybox busybox-static
need qemu-aarch64-static qemu-user-static
need nix-store nix-bin
need ssh openssh-client
need xz xz-utils
need dpkg-deb dpkg
need ss iproute2
# The guest formats its disk with the host's mkfs.ext4 (minimal Debian 13 systems lack it), and
# Debian 13's kernels are zstd-compressed: without zstd the fast PVH boot cannot be extracted.
need /usr/sbin/mkfs.ext4 e2fsprogs
need zstd zstd
# virtio-fs shares: Debian 12's QEMU ships its own virtiofsd; newer distributions package it apart.
if ! command -v virtiofsd >/dev/null 2>&1 && [ ! -x /usr/libexec/virtiofsd ] && [ ! -x /usr/lib/virtiofsd ] \
  && [ ! -x /usr/lib/qemu/virtiofsd ] && apt-cache show virtiofsd >/dev/null 2>&1; then
  missing="$missing virtiofsd"
fi
if $for_tests; then need debootstrap debootstrap; fi

if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then sudo=""
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"
  else
    say "missing packages:$missing"
    say "install them as root: apt-get install -y$missing"; exit 1
  fi
  say "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086
  $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 || {
    say "apt-get install failed; refreshing the package lists (apt-get update) and retrying"
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    $sudo apt-get install -y -qq --no-install-recommends $missing
  }
fi

# Debian's nix-bin leaves no store and expects build users; a single-user root setup needs neither.
if [ "$(id -u)" = 0 ]; then
  if [ ! -e /etc/nix/nix.conf ]; then
    say "writing /etc/nix/nix.conf for single-user Nix (build-users-group =, sandbox = false)"
    mkdir -p /etc/nix
    printf 'build-users-group =\nsandbox = false\n' > /etc/nix/nix.conf
  fi
  if [ ! -d /nix/store ] || [ ! -d /nix/var/nix/db ]; then
    say "initializing the Nix store (nix-store --init)"
    nix-store --init
  fi
fi

# The demo and the tests build derivations whose builder is Debian's static busybox of each
# system's architecture (arm64, i386, armhf), downloaded (never installed); apt needs those as
# foreign architectures for that.
if [ "$(uname -m)" = x86_64 ]; then
  foreign=""
  for arch in arm64 i386 armhf; do
    dpkg --print-foreign-architectures | grep -qx "$arch" || foreign="$foreign $arch"
  done
  if [ -n "$foreign" ]; then
    if [ "$(id -u)" = 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }; then
      sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
      say "adding dpkg foreign architectures:$foreign (for Debian's static busybox of each; nothing is installed)"
      for arch in $foreign; do $sudo dpkg --add-architecture "$arch"; done
      # A mirror caught mid-sync fails some index files: what did arrive is enough for busybox.
      $sudo apt-get update -qq || say "apt-get update failed for some index files; continuing with those that arrived"
    else
      say "note: the demo and tests need, as root:$(for arch in $foreign; do printf ' dpkg --add-architecture %s &&' "$arch"; done) apt-get update"
    fi
  fi
fi

# npm dependencies: installed when the lockfile is newer than what node_modules was made from.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# The compiled CLI starts faster than the sources through tsx; rebuilt when src/ changed.
if [ ! -f dist/.built ] || [ -n "$(find src -newer dist/.built -print -quit)" ]; then
  say "compiling the CLI (tsc → dist/)"
  npm run --silent build
fi
