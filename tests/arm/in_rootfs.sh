#!/usr/bin/env bash
# Run a command inside the emulated arm64 rootfs (made by tests/arm/rootfs.sh).
#
#   tests/arm/in_rootfs.sh [--overlay DIR] [--docker] ROOTFS COMMAND [ARGS...]
#
# --overlay DIR: ROOTFS stays untouched; changes go to DIR/upper (an overlayfs mounted in the
# private namespace), so consecutive calls with the same DIR see each other's changes and
# deleting DIR undoes them (used to install the .debs into a throwaway copy).
# --docker: /run inside is a fresh tmpfs (as on a booted system) with the host's
# /var/run/docker.sock bound to /run/docker.sock, so edged in the emulated edge has a
# container runtime to talk to (the Docker API over a unix socket does not care about the
# client's architecture).
#
# The command runs chrooted in ROOTFS, in a private mount namespace (unshare -m) with /proc
# mounted, so nothing stays mounted when it ends, while the network namespace is the
# host's: 127.0.0.1 inside is the host's loopback, where the native cloud listens. The
# process keeps this script's PID (everything is exec'd), so the caller can SIGTERM it.
#
# With an enabled binfmt_misc handler for aarch64 the kernel runs arm64 binaries through
# qemu by itself; without one, qemu-aarch64-static is copied into the rootfs and named
# explicitly (then an arm64 program cannot exec another arm64 program, which the .pyz
# never needs when started with -I -S).
set -euo pipefail

overlay=""
docker=""
while [ $# -gt 0 ]; do
  case "$1" in
    --overlay) overlay=${2:?--overlay needs a directory}; shift 2 ;;
    --docker) docker=/var/run/docker.sock; shift ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "usage: tests/arm/in_rootfs.sh [--overlay DIR] [--docker] ROOTFS COMMAND [ARGS...]" >&2; exit 2; }
if [ -n "$docker" ] && [ ! -S "$docker" ]; then
  echo "tests/arm/in_rootfs.sh: --docker: no Docker engine socket at $docker" >&2; exit 2
fi
rootfs=$(cd "$1" && pwd)
shift
if [ -n "$overlay" ]; then
  mkdir -p "$overlay/upper" "$overlay/work" "$overlay/merged"
  overlay=$(cd "$overlay" && pwd)
fi

qemu=()
if ! { [ -r /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
       && head -1 /proc/sys/fs/binfmt_misc/qemu-aarch64 | grep -qx enabled; }; then
  if [ ! -x "$rootfs/usr/bin/qemu-aarch64-static" ]; then
    cp /usr/bin/qemu-aarch64-static "$rootfs/usr/bin/qemu-aarch64-static"
  fi
  qemu=(/usr/bin/qemu-aarch64-static)
fi

exec unshare --mount --propagation private -- /bin/sh -c '
  r=$1 o=$2 d=$3; shift 3
  if [ -n "$o" ]; then
    mount -t overlay overlay -o "lowerdir=$r,upperdir=$o/upper,workdir=$o/work" "$o/merged" || exit 125
    r=$o/merged
  fi
  mount -t proc proc "$r/proc" || exit 125
  if [ -n "$d" ]; then
    mount -t tmpfs -o mode=0755 tmpfs "$r/run" && : >"$r/run/docker.sock" \
      && mount --bind "$d" "$r/run/docker.sock" || exit 125
  fi
  exec chroot "$r" "$@"' sh "$rootfs" "$overlay" "$docker" "${qemu[@]}" "$@"
