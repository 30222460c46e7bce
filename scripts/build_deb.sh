#!/usr/bin/env bash
# Build the Debian packages kubeedge-tw-edge and kubeedge-tw-cloud for one architecture.
#
#   scripts/build_deb.sh [--arch amd64|arm64] [--pyz-dir DIR] [--lintian]
#
#   --arch     Debian architecture (default: this machine's); arm64 on amd64 is a cross
#              build, which compiles nothing (debian/README.source)
#   --pyz-dir  where the .pyz files and manifest of that architecture are (default dist/;
#              `scripts/build_pyz.sh --arch x86_64|aarch64` makes them)
#   --lintian  run lintian on the result; fail on errors (E:), show warnings
#
# dpkg-buildpackage -us -uc -b runs in a copy of the needed part of the tree (so neither
# debian/ build litter nor ../*.deb lands in the working tree); the .debs and .buildinfo
# go to dist/. Offline. Needs debhelper and dpkg-dev (scripts/test.sh installs them as root).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/build_deb.sh: %s\n' "$*" >&2; exit 1; }

arch=$(dpkg --print-architecture)
pyz_dir="$top/dist"
lintian=0
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=${2:?}; shift 2 ;;
    --arch=*) arch=${1#*=}; shift ;;
    --pyz-dir) pyz_dir=${2:?}; shift 2 ;;
    --lintian) lintian=1; shift ;;
    *) die "unknown argument $1" ;;
  esac
done
case "$arch" in amd64) pyz_arch=x86_64 ;; arm64) pyz_arch=aarch64 ;;
  *) die "--arch must be amd64 or arm64 (no armhf: docs/distribution.md)" ;; esac
command -v dpkg-buildpackage >/dev/null && [ -f /usr/share/perl5/Debian/Debhelper/Dh_Lib.pm ] \
  || die "needs dpkg-dev and debhelper (apt-get install dpkg-dev debhelper)"
pyz_dir=$(cd "$pyz_dir" && pwd)
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$top/kubeedge_tw/__init__.py")
for f in "kubeedge-edge-$version-$pyz_arch.pyz" "kubeedge-cloud-$version-$pyz_arch.pyz" \
         "kubeedge-tw-$version-$pyz_arch.manifest"; do
  [ -f "$pyz_dir/$f" ] || die "no $pyz_dir/$f: run scripts/build_pyz.sh --arch $pyz_arch first"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/kubeedge-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
src="$work/kubeedge-tw-$version"
mkdir -p "$src"
(cd "$top" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - debian scripts conf kubeedge_tw \
   twisted/plugins setup.cfg pyproject.toml README.md) | tar -xf - -C "$src"

started=$(date +%s)
build_args=(-us -uc -b)
[ "$arch" = "$(dpkg --print-architecture)" ] || build_args+=(-a "$arch")
say "dpkg-buildpackage ${build_args[*]} (kubeedge-tw $version, $arch)"
(cd "$src" && KUBEEDGE_TW_PYZ_DIR="$pyz_dir" dpkg-buildpackage "${build_args[@]}") >"$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log" >&2; die "dpkg-buildpackage failed"; }
mkdir -p "$top/dist"
debs=()
for f in "$work"/*.deb; do
  cp "$f" "$top/dist/"
  debs+=("$top/dist/$(basename "$f")")
done
cp "$work"/*.buildinfo "$top/dist/" 2>/dev/null || true
for d in "${debs[@]}"; do
  say "$(basename "$d"): $(( $(stat -c %s "$d") / 1024 )) KiB, Installed-Size $(dpkg-deb -f "$d" Installed-Size) KiB"
done
say "built in $(( $(date +%s) - started )) s"

if [ "$lintian" = 1 ]; then
  command -v lintian >/dev/null || die "lintian is not installed"
  say "lintian"
  out=$(lintian --tag-display-limit 0 "${debs[@]}" 2>&1) || true
  [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/    /' >&2
  if printf '%s\n' "$out" | grep -q '^E: '; then die "lintian reports errors"; fi
  say "lintian: no errors"
fi
printf '%s\n' "${debs[@]}"
