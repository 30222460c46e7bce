#!/usr/bin/env bash
# Build self-contained .pyz files of kubeedge-tw for one CPU architecture (docs/distribution.md).
#
#   scripts/build_pyz.sh [--arch x86_64|aarch64|armv7l] [--python 3.11] [--side edge|cloud|both]
#                        [--glibc 2.28] [--offline] [--out DIR]
#
#   --arch     target machine (default: this one's, uname -m); arm64/amd64 are accepted too
#   --python   target CPython minor version (default 3.11); the compiled wheels are for it only
#   --side     which file(s) to build (default both)
#   --glibc    newest glibc the wheels may need (default 2.28); older ones are preferred by pip
#              only when no newer version of a package exists for them, see docs
#   --offline  no network: take the dependency wheels from the wheelhouse a previous online
#              build of the same --arch/--python/--glibc left in $KUBEEDGE_TW_WHEELHOUSE
#   --out      output directory (default dist/)
#
# Produces  DIR/kubeedge-edge-<version>-<arch>.pyz  and  DIR/kubeedge-cloud-<version>-<arch>.pyz
# (for --python other than 3.11 the names end in -cpXY.pyz) and DIR/kubeedge-tw-<version>-<arch>.manifest
# (bundled wheels, their manylinux tags, the minimum glibc, sizes, sha256).
#
# How: our package is built as a wheel from a snapshot of the tree (tests and bench are not
# in it); the dependency wheels are downloaded for the target with
# `pip download --only-binary=:all: --platform manylinux_... --python-version ...`, so an
# x86_64 machine builds the ARM files; `pip install --target` lays them out, and shiv zips
# them with scripts/pyz_preamble.py (isolation re-exec, Python/arch check) and the entry
# point kubeedge_tw.__main__:main_console. Run: `python3 X.pyz edge --config edgecore.yaml`.
# Unpacked to $SHIV_ROOT (default ~/.shiv) on first start.
#
# Exit status: 0 built; 1 a step failed; 3 no binary wheels exist for the target (the
# missing projects are listed).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
venv="${KUBEEDGE_TW_VENV:-$top/.venv}"
py="$venv/bin/python"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/build_pyz.sh: %s\n' "$*" >&2; exit "${2:-1}"; }
usage() { sed -n '2,16s/^# \{0,1\}//p' "$0" >&2; exit 2; }

arch=$(uname -m)
python_version=3.11
side=both
glibc=2.28
offline=0
out="$top/dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch=${2:?--arch needs a value}; shift 2 ;;
    --arch=*) arch=${1#*=}; shift ;;
    --python) python_version=${2:?--python needs a value}; shift 2 ;;
    --python=*) python_version=${1#*=}; shift ;;
    --side) side=${2:?--side needs a value}; shift 2 ;;
    --side=*) side=${1#*=}; shift ;;
    --glibc) glibc=${2:?--glibc needs a value}; shift 2 ;;
    --glibc=*) glibc=${1#*=}; shift ;;
    --offline) offline=1; shift ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    -h|--help) usage ;;
    *) printf 'scripts/build_pyz.sh: unknown argument %s\n' "$1" >&2; usage ;;
  esac
done
case "$arch" in
  x86_64|amd64) arch=x86_64 ;;
  aarch64|arm64) arch=aarch64 ;;
  armv7l|armhf|armv7) arch=armv7l ;;
  *) die "unsupported --arch $arch (x86_64, aarch64 or armv7l)" ;;
esac
case "$side" in edge) sides=(edge) ;; cloud) sides=(cloud) ;; both) sides=(edge cloud) ;;
  *) die "--side must be edge, cloud or both" ;; esac
[[ "$python_version" =~ ^3\.[0-9]+$ ]] || die "--python must look like 3.11"
[[ "$glibc" =~ ^2\.[0-9]+$ ]] || die "--glibc must look like 2.28"
pytag="cp${python_version/./}"

[ -x "$py" ] || die "no virtualenv at $venv (scripts/test.sh or scripts/demo.sh creates it; or set KUBEEDGE_TW_VENV)"
if ! "$py" -c 'import shiv' 2>/dev/null; then
  [ "$offline" = 0 ] || die "shiv is not installed in $venv and --offline was given"
  say "installing shiv into $venv"
  "$py" -m pip install -q --disable-pip-version-check 'shiv>=1.0' || die "pip install shiv failed"
fi

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$top/kubeedge_tw/__init__.py")
[ -n "$version" ] || die "cannot read __version__ from kubeedge_tw/__init__.py"
suffix=""
[ "$python_version" = 3.11 ] || suffix="-$pytag"
wheelhouse="${KUBEEDGE_TW_WHEELHOUSE:-$top/dist/wheelhouse}/$arch-$pytag-glibc$glibc"
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/kubeedge-pyz.XXXXXX")
trap 'rm -rf "$work"' EXIT
log="$work/pip.log"
started=$(date +%s)

# pip prints a warning for every unusable extra index location some machines configure;
# keep its output in a log and show it only when a step fails.
pip_q() { "$py" -m pip --disable-pip-version-check "$@" >>"$log" 2>&1; }
fail_pip() { grep -v 'is ignored: it is neither' "$log" | tail -25 >&2; die "$1"; }

mapfile -t plats < <("$py" "$top/scripts/pyz_wheels.py" platforms "$arch" "$glibc")
target_args=(--only-binary=:all: --python-version "$python_version" --implementation cp
             --abi "$pytag" --abi abi3 --abi none)
for p in "${plats[@]}"; do target_args+=(--platform "$p"); done

# -- 1. our wheel, from a snapshot of the tree (other people may be editing it) -------------------
say "building the kubeedge-tw $version wheel"
mkdir -p "$work/src" "$work/own"
(cd "$top" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - setup.cfg pyproject.toml README.md \
   kubeedge_tw twisted/plugins) | tar -xf - -C "$work/src"
pip_q wheel --no-deps --no-build-isolation -w "$work/own" "$work/src" || fail_pip "building our wheel failed"
own=$(ls "$work/own"/kubeedge_tw-*.whl)

# -- 2. dependency wheels for the target ----------------------------------------------------------
missing_report() {  # which binary projects have no wheel at all for the target
  rm -rf "$wheelhouse.new"
  say "looking for the projects without $arch wheels"
  mkdir -p "$work/ref"
  local ref_plats=() p name
  mapfile -t ref_plats < <("$py" "$top/scripts/pyz_wheels.py" platforms x86_64 "$glibc")
  local ref_args=(--only-binary=:all: --python-version "$python_version" --implementation cp
                  --abi "$pytag" --abi abi3 --abi none)
  for p in "${ref_plats[@]}"; do ref_args+=(--platform "$p"); done
  pip_q download -q -d "$work/ref" "${ref_args[@]}" "$own" || fail_pip "cannot resolve the dependencies even for x86_64"
  local missing=() users
  while read -r name; do
    rm -rf "$work/probe"
    if ! pip_q download -q --no-deps -d "$work/probe" "${target_args[@]}" "$name"; then
      users=$("$py" "$top/scripts/pyz_wheels.py" requiredby "$name" "$work/ref"/*.whl)
      missing+=("$name${users:+ (required by ${users// /, })}")
    fi
  done < <("$py" "$top/scripts/pyz_wheels.py" binary "$work/ref"/*.whl)
  if [ ${#missing[@]} -gt 0 ]; then
    printf 'scripts/build_pyz.sh: cannot build for %s: PyPI has no %s wheel (manylinux, glibc <= %s), in any version, of:\n' \
      "$arch" "$pytag" "$glibc" >&2
    printf '  %s\n' "${missing[@]}" >&2
    printf '  (the x86_64 resolution is the reference; see docs/distribution.md for armv7l)\n' >&2
  else
    printf 'scripts/build_pyz.sh: cannot build for %s: every binary project has some %s wheel, but no\n  combination of versions satisfies the requirements (pip log below)\n' "$arch" "$pytag" >&2
    grep -v 'is ignored: it is neither' "$log" | tail -15 >&2
  fi
  exit 3
}

if [ "$offline" = 1 ]; then
  ls "$wheelhouse"/*.whl >/dev/null 2>&1 || die "--offline: no wheels in $wheelhouse (build once online)"
  say "offline: using the wheels in $wheelhouse"
else
  say "downloading $arch $pytag wheels (glibc <= $glibc) into $wheelhouse"
  rm -rf "$wheelhouse.new"
  mkdir -p "$wheelhouse.new"
  pip_q download -q -d "$wheelhouse.new" "${target_args[@]}" "$own" || missing_report
  rm -f "$wheelhouse.new"/kubeedge_tw-*.whl
  rm -rf "$wheelhouse"
  mv "$wheelhouse.new" "$wheelhouse"
fi

# -- 3. site-packages as it will be unpacked on the device ----------------------------------------
say "laying out site-packages"
pip_q install -q --no-index --find-links "$wheelhouse" --target "$work/site" "${target_args[@]}" "$own" \
  || fail_pip "pip install --target failed (wheelhouse incomplete? build once without --offline)"
bundled=()
while read -r name ver; do
  for w in "$wheelhouse"/*.whl; do
    base=$(basename "$w"); n=${base%%-*}; rest=${base#*-}; v=${rest%%-*}
    if [ "$(echo "$n" | tr 'A-Z-.' 'a-z__')" = "$(echo "$name" | tr 'A-Z-.' 'a-z__')" ] && [ "$v" = "$ver" ]; then
      bundled+=("$w")
    fi
  done
done < <(cd "$work/site" && for d in *.dist-info; do
           sed -n 's/^Name: //p;s/^Version: //p' "$d/METADATA" | head -2 | paste -sd' '
         done | grep -v '^kubeedge[-_]tw ')
# Console scripts made for the build machine's Python are useless on the device, and
# compiled caches are made on first use there.
rm -rf "$work/site/bin"
find "$work/site" -name __pycache__ -type d -prune -exec rm -rf {} +
# The dependencies' own test suites are never imported at run time (ours are not in the
# wheel at all).
find "$work/site" -depth -type d \( -name test -o -name tests \) -path '*/site/*/*' \
  -not -path '*/kubeedge_tw/*' -exec rm -rf {} +

# -- 4. the .pyz files ------------------------------------------------------------------------
for s in "${sides[@]}"; do
  mkdir -p "$work/preamble-$s"
  pre="$work/preamble-$s/kubeedge_tw_preamble.py"
  sed "s/^BUILD = .*/BUILD = {\"python\": \"$python_version\", \"arch\": \"$arch\", \"side\": \"$s\", \"version\": \"$version\"}/" \
    "$top/scripts/pyz_preamble.py" >"$pre"
  grep -q "\"side\": \"$s\"" "$pre" || die "could not fill in the preamble"
  target="$out/kubeedge-$s-$version-$arch$suffix.pyz"
  say "zipping $target"
  "$py" -m shiv --site-packages "$work/site" --entry-point kubeedge_tw.__main__:main_console \
    --python "/usr/bin/env -S python$python_version -I -S" --preamble "$pre" --reproducible \
    --output-file "$target.tmp" >>"$log" 2>&1 || fail_pip "shiv failed"
  mv "$target.tmp" "$target"
done

# -- 5. manifest --------------------------------------------------------------------------------
manifest="$out/kubeedge-tw-$version-$arch$suffix.manifest"
{
  echo "kubeedge-tw $version for $arch, CPython $python_version ($pytag), built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "unpacked size: $(du -sk "$work/site" | cut -f1) KiB"
  for s in "${sides[@]}"; do
    f="$out/kubeedge-$s-$version-$arch$suffix.pyz"
    echo "$(basename "$f"): $(stat -c %s "$f") bytes, sha256 $(sha256sum "$f" | cut -d' ' -f1)"
  done
  echo "bundled wheels (glibc = oldest glibc the wheel runs on):"
  "$py" "$top/scripts/pyz_wheels.py" report "${bundled[@]}"
} >"$manifest"
glibc_line=$(grep '^glibc-min' "$manifest")
for s in "${sides[@]}"; do
  f="$out/kubeedge-$s-$version-$arch$suffix.pyz"
  say "$(basename "$f"): $(( $(stat -c %s "$f") / 1024 )) KiB"
done
say "needs CPython $python_version and ${glibc_line#glibc-min } (manifest $manifest); took $(( $(date +%s) - started )) s"
