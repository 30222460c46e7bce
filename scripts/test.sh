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
"$venv/bin/python" - "$log_dir/trial.log" "$status" <<'PY'
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
[ $? -eq 0 ] || status=1
exit "$status"
