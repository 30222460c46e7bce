#!/usr/bin/env bash
# Run the whole test suite the way CI does, on a fresh Debian/Ubuntu machine or a dev box.
#
#   scripts/test.sh [trial arguments...]      (default: all of tests/)
#
# 1. creates or updates the virtualenv .venv with the package and its test extras;
# 2. as root, installs the real parts the integration tests use (Debian packages docker.io,
#    mosquitto, mosquitto-clients, busybox-static; kubectl's fallback kubernetes-client) and
#    starts dockerd in the background with host networking only
#    (--bridge=none --iptables=false --ip-masq=false), waiting until it answers;
# 3. runs `trial` and ends with the line `N passed, N failed[, N skipped]`.
# Exit status is non-zero when any test failed or errored.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
venv="${KUBEEDGE_TW_VENV:-$top/.venv}"
python="${PYTHON:-python3}"
log_dir="${TMPDIR:-/tmp}/kubeedge-tw-test"
mkdir -p "$log_dir"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }

# -- 1. virtualenv ----------------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
  say "creating virtualenv $venv"
  "$python" -m venv "$venv" || die "could not create a virtualenv with $python (install python3-venv)"
fi
say "installing kubeedge-tw and its test extras into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel \
  >"$log_dir/pip.log" 2>&1 || { cat "$log_dir/pip.log" >&2; die "pip upgrade failed"; }
"$venv/bin/python" -m pip install -q --disable-pip-version-check ".[test]" \
  >>"$log_dir/pip.log" 2>&1 || { cat "$log_dir/pip.log" >&2; die "pip install .[test] failed"; }

# -- 2. real parts (root only) -------------------------------------------------------------------
if [ "$(id -u)" = 0 ]; then
  missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
  command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
  [ -x /bin/busybox ] || missing+=(busybox-static)
  command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >"$log_dir/apt.log" 2>&1 || { cat "$log_dir/apt.log" >&2; die "apt-get update failed"; }
    apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log_dir/apt.log" 2>&1 \
      || { tail -30 "$log_dir/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
  fi
  if ! docker info >/dev/null 2>&1; then
    say "starting dockerd (host networking only) in the background, log $log_dir/dockerd.log"
    setsid nohup dockerd --bridge=none --iptables=false --ip-masq=false \
      >"$log_dir/dockerd.log" 2>&1 < /dev/null &
    for _ in $(seq 1 60); do
      docker info >/dev/null 2>&1 && break
      sleep 1
    done
    docker info >/dev/null 2>&1 || { tail -20 "$log_dir/dockerd.log" >&2; die "dockerd did not come up in 60 s"; }
  fi
else
  say "not root: using whatever docker/mosquitto/kubectl this machine already has"
fi

# -- 3. tests ----------------------------------------------------------------------------------
export PATH="$venv/bin:$PATH"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(tests)
say "running trial ${targets[*]}"
set +e
"$venv/bin/python" -m twisted.trial --temp-directory="$log_dir/_trial_temp" "${targets[@]}" 2>&1 \
  | tee "$log_dir/trial.log"
status=${PIPESTATUS[0]}
set -e

set +e
summary=$("$venv/bin/python" - "$log_dir/trial.log" "$status" <<'PY'
"""Turn trial's closing line into 'N passed, N failed[, N skipped]'."""
import re
import sys

text = open(sys.argv[1], errors="replace").read()
status = int(sys.argv[2])
m = None
for m in re.finditer(r"^(PASSED|FAILED) \((.*)\)\s*$", text, re.M):
    pass
counts = {}
if m:
    for key, value in re.findall(r"(\w+)=(\d+)", m.group(2)):
        counts[key] = int(value)
passed = counts.get("successes", 0) + counts.get("expectedFailures", 0)
failed = counts.get("failures", 0) + counts.get("errors", 0) + counts.get("unexpectedSuccesses", 0)
skipped = counts.get("skips", 0)
if m is None or (status != 0 and failed == 0):
    failed = max(failed, 1)  # trial died before its summary, or failed without counting it
line = "{} passed, {} failed".format(passed, failed)
if skipped:
    line += ", {} skipped".format(skipped)
print(line)
sys.exit(1 if m is None else 0)
PY
)
[ $? -eq 0 ] || status=1

# -- distribution checks (issue 10) ------------------------------------------------------------
# Optional; runs as root, for the full suite (no trial arguments, or KUBEEDGE_TW_DIST=1), unless
# KUBEEDGE_TW_SKIP_DIST is set. Installs qemu-user-static, debootstrap, binfmt-support and the
# Debian build tools if missing; builds the x86_64 and aarch64 .pyz files
# (scripts/build_pyz.sh, needs PyPI), runs tests/arm/run_pyz_arm64.sh (arm64 rootfs cached in
# /var/cache/kubeedge-tw-arm64), builds the amd64 and arm64 .debs with lintian
# (scripts/build_deb.sh) and runs `trial tests.packaging.artifacts` on all of it. Each build
# or script adds 1 to the passed or failed count of the final line, the artifact tests add
# their own counts. Logs in $log_dir/dist/. Measured: 251 s on a cold cache (arm64 rootfs
# 135 s of it) plus the one-time apt install, 121 s warm (docs/distribution.md).
dist_passed=0 dist_failed=0 dist_skipped=0
if [ "$(id -u)" = 0 ] && [ -z "${KUBEEDGE_TW_SKIP_DIST:-}" ] \
   && { [ $# -eq 0 ] || [ -n "${KUBEEDGE_TW_DIST:-}" ]; }; then
  dist_started=$(date +%s)
  dist_logs="$log_dir/dist"
  mkdir -p "$dist_logs"
  dist_check() {  # dist_check NAME LOG COMMAND...: run, count, say
    local name=$1 logf=$2 t0
    shift 2
    t0=$(date +%s)
    if "$@" >"$logf" 2>&1; then
      dist_passed=$((dist_passed + 1))
      say "dist: PASS $name ($(( $(date +%s) - t0 )) s)"
    else
      dist_failed=$((dist_failed + 1))
      say "dist: FAIL $name ($(( $(date +%s) - t0 )) s, log $logf):"
      tail -20 "$logf" >&2
      return 1
    fi
  }
  dist_missing=()
  [ -x /usr/bin/qemu-aarch64-static ] || dist_missing+=(qemu-user-static)
  command -v debootstrap >/dev/null 2>&1 || dist_missing+=(debootstrap)
  command -v update-binfmts >/dev/null 2>&1 || dist_missing+=(binfmt-support)
  command -v dh >/dev/null 2>&1 || dist_missing+=(debhelper)
  command -v dpkg-buildpackage >/dev/null 2>&1 || dist_missing+=(dpkg-dev)
  command -v lintian >/dev/null 2>&1 || dist_missing+=(lintian)
  dpkg -s build-essential >/dev/null 2>&1 || dist_missing+=(build-essential)
  dist_tools=ok
  if [ ${#dist_missing[@]} -gt 0 ]; then
    say "dist: installing Debian packages: ${dist_missing[*]}"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${dist_missing[@]}"; \
         } >"$dist_logs/apt.log" 2>&1; then
      tail -20 "$dist_logs/apt.log" >&2
      say "dist: FAIL installing ${dist_missing[*]} (log $dist_logs/apt.log)"
      dist_failed=$((dist_failed + 1))
      dist_tools=failed
    fi
  fi
  if [ "$dist_tools" = ok ]; then
    rm -f "$top"/dist/kubeedge-edge-*.pyz "$top"/dist/kubeedge-cloud-*.pyz "$top"/dist/kubeedge-tw-*.manifest \
          "$top"/dist/kubeedge-tw-edge_*.deb "$top"/dist/kubeedge-tw-cloud_*.deb "$top"/dist/kubeedge-tw_*.buildinfo
    dist_check "build .pyz x86_64" "$dist_logs/pyz-x86_64.log" scripts/build_pyz.sh --arch x86_64
    dist_check "build .pyz aarch64" "$dist_logs/pyz-aarch64.log" scripts/build_pyz.sh --arch aarch64
    dist_check "aarch64 edge .pyz on emulated arm64, joined to a native cloud" \
      "$dist_logs/arm64.log" tests/arm/run_pyz_arm64.sh \
      && sed -n '/^timings/,$p' "$dist_logs/arm64.log" >&2
    dist_check "build .deb amd64 (+ lintian)" "$dist_logs/deb-amd64.log" scripts/build_deb.sh --arch amd64 --lintian
    dist_check "build .deb arm64 (+ lintian)" "$dist_logs/deb-arm64.log" scripts/build_deb.sh --arch arm64 --lintian
    dist_rootfs=$(tests/arm/rootfs.sh 2>/dev/null) || dist_rootfs=""
    say "dist: trial tests.packaging.artifacts"
    KUBEEDGE_TW_DIST_DIR="$top/dist" KUBEEDGE_TW_ARM64_ROOTFS="$dist_rootfs" "$venv/bin/python" -m twisted.trial \
      --temp-directory="$dist_logs/_trial_temp" tests.packaging.artifacts >"$dist_logs/artifacts.log" 2>&1
    dist_rc=$?
    dist_line=$(grep -E '^(PASSED|FAILED) \(' "$dist_logs/artifacts.log" | tail -1)
    dist_n() {  # dist_n KEY: KEY=N from trial's closing line, else 0
      local v
      v=$(printf '%s' "$dist_line" | grep -o "$1=[0-9]*" | cut -d= -f2 | head -1) || true
      echo "${v:-0}"
    }
    dist_f=$(( $(dist_n failures) + $(dist_n errors) + $(dist_n unexpectedSuccesses) ))
    if [ -z "$dist_line" ] || { [ "$dist_rc" != 0 ] && [ "$dist_f" = 0 ]; }; then
      dist_f=$((dist_f + 1))  # trial died before its summary, or failed without counting it
    fi
    dist_passed=$((dist_passed + $(dist_n successes) + $(dist_n expectedFailures)))
    dist_failed=$((dist_failed + dist_f))
    dist_skipped=$((dist_skipped + $(dist_n skips)))
    say "dist: tests.packaging.artifacts: ${dist_line:-no summary (log $dist_logs/artifacts.log)}"
    [ "$dist_f" = 0 ] || tail -40 "$dist_logs/artifacts.log" >&2
  fi
  say "dist: distribution checks: $dist_passed passed, $dist_failed failed, $dist_skipped skipped in $(( $(date +%s) - dist_started )) s"
  [ "$dist_failed" = 0 ] || status=1
  if [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)?$ ]]; then
    summary="$(( BASH_REMATCH[1] + dist_passed )) passed, $(( BASH_REMATCH[2] + dist_failed )) failed"
    dist_skipped=$(( ${BASH_REMATCH[4]:-0} + dist_skipped ))
    [ "$dist_skipped" = 0 ] || summary="$summary, $dist_skipped skipped"
  fi
fi
# -- end of distribution checks (issue 10) -----------------------------------------------------

echo "$summary"
exit "$status"
