#!/usr/bin/env bash
# Create or reuse the emulated arm64 Debian rootfs the ARM checks run in; print its path.
#
#   tests/arm/rootfs.sh [--mode auto|binfmt|explicit]
#
# Cached under $KUBEEDGE_TW_ARM64_CACHE (default /var/cache/kubeedge-tw-arm64 as root, else
# ${XDG_CACHE_HOME:-~/.cache}/kubeedge-tw-arm64) as rootfs-bookworm/, reused while its
# stamp file says it is complete and has the same package list. Delete the directory to
# start over. Needs root, debootstrap and qemu-user-static.
#
# binfmt: binfmt_misc is mounted (if it is not) and qemu-aarch64 enabled (binfmt-support),
#   then `debootstrap --arch=arm64 --variant=minbase --include=PKGS bookworm` runs both
#   stages; the maintainer scripts run under emulation. This is the normal path.
# explicit: when binfmt_misc cannot be used (containers), `debootstrap --foreign` downloads
#   and unpacks, the remaining packages are unpacked with dpkg-deb -x, and
#   qemu-aarch64-static is copied into the rootfs to run programs explicitly (see
#   tests/arm/in_rootfs.sh). No maintainer script runs, which python3 does not need.
#
# PKGS: python3, and python3-zope.interface on purpose: its namespace .pth is the distro
# package that breaks a zipapp run with site enabled (docs/distribution.md).
set -euo pipefail

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'tests/arm/rootfs.sh: %s\n' "$*" >&2; exit 1; }

mode=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) mode=${2:?}; shift 2 ;;
    --mode=*) mode=${1#*=}; shift ;;
    *) die "unknown argument $1" ;;
  esac
done
case "$mode" in auto|binfmt|explicit) ;; *) die "--mode must be auto, binfmt or explicit" ;; esac

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/kubeedge-tw-arm64
else default_cache="${XDG_CACHE_HOME:-$HOME/.cache}/kubeedge-tw-arm64"; fi
cache="${KUBEEDGE_TW_ARM64_CACHE:-$default_cache}"
mirror="${KUBEEDGE_TW_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
pkgs="python3,python3-zope.interface"
rootfs="$cache/rootfs-$suite"
stamp="$rootfs/.kubeedge-tw-rootfs"
want="suite=$suite arch=arm64 variant=minbase include=$pkgs"

command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
[ -x /usr/bin/qemu-aarch64-static ] || die "qemu-aarch64-static is not installed (apt-get install qemu-user-static)"

binfmt_ready() {  # is an enabled aarch64 handler registered?
  [ -r /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && head -1 /proc/sys/fs/binfmt_misc/qemu-aarch64 | grep -qx enabled
}
enable_binfmt() {
  binfmt_ready && return 0
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || return 1
  fi
  if command -v update-binfmts >/dev/null; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  fi
  binfmt_ready
}

if [ -f "$stamp" ] && grep -qxF "$want" "$stamp"; then
  made=$(sed -n 's/^made=//p' "$stamp")
  if [ "$made" = binfmt ] && [ "$mode" != explicit ]; then enable_binfmt || true; fi
  say "reusing the arm64 rootfs $rootfs (made with $made)"
  echo "$rootfs"
  exit 0
fi

if [ "$mode" = auto ]; then
  if enable_binfmt; then mode=binfmt; else mode=explicit; fi
elif [ "$mode" = binfmt ]; then
  enable_binfmt || die "binfmt_misc cannot be used here (try --mode explicit)"
fi

say "creating the arm64 $suite rootfs in $rootfs ($mode); this takes a few minutes once"
mkdir -p "$cache"
tmp="$rootfs.tmp"
rm -rf "$tmp" "$rootfs"
log="$cache/debootstrap.log"
started=$(date +%s)
if [ "$mode" = binfmt ]; then
  debootstrap --arch=arm64 --variant=minbase --include="$pkgs" "$suite" "$tmp" "$mirror" >"$log" 2>&1 \
    || { tail -20 "$log" >&2; [ -f "$tmp/debootstrap/debootstrap.log" ] && tail -20 "$tmp/debootstrap/debootstrap.log" >&2; die "debootstrap failed (log $log)"; }
else
  debootstrap --foreign --arch=arm64 --variant=minbase --include="$pkgs" "$suite" "$tmp" "$mirror" >"$log" 2>&1 \
    || { tail -20 "$log" >&2; die "debootstrap --foreign failed (log $log)"; }
  for deb in "$tmp"/var/cache/apt/archives/*.deb; do
    dpkg-deb -x "$deb" "$tmp"
  done
  # What the second stage would have set up and programs rely on (/var/run/docker.sock).
  for link in run:/run lock:/run/lock; do
    if [ ! -L "$tmp/var/${link%%:*}" ]; then
      rm -rf "${tmp:?}/var/${link%%:*}"
      ln -s "${link#*:}" "$tmp/var/${link%%:*}"
    fi
  done
  cp /usr/bin/qemu-aarch64-static "$tmp/usr/bin/qemu-aarch64-static"
fi
[ -x "$tmp/usr/bin/python3" ] || die "the rootfs has no /usr/bin/python3 (log $log)"
rm -f "$tmp"/var/cache/apt/archives/*.deb
printf '%s\nmade=%s\nseconds=%s\n' "$want" "$mode" "$(( $(date +%s) - started ))" >"$tmp/.kubeedge-tw-rootfs"
mv "$tmp" "$rootfs"
say "arm64 rootfs ready in $(( $(date +%s) - started )) s ($(du -sm "$rootfs" | cut -f1) MiB)"
echo "$rootfs"
