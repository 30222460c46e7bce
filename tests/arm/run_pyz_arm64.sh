#!/usr/bin/env bash
# The aarch64 edge .pyz on an emulated arm64 Debian (qemu-user), joined to a cloud that runs
# natively on this host over loopback; prints cold/warm start times natively and under qemu.
#
#   tests/arm/run_pyz_arm64.sh [--pyz FILE] [--native-pyz FILE|none] [--rootfs-mode auto|binfmt|explicit] [--keep]
#
#   --pyz          the aarch64 edge .pyz (default dist/kubeedge-edge-<version>-aarch64.pyz)
#   --native-pyz   the edge .pyz for this host, for the native column of the timings
#                  (default dist/kubeedge-edge-<version>-<uname -m>.pyz if it exists; none: skip)
#   --rootfs-mode  how tests/arm/rootfs.sh makes the rootfs if it is not cached yet
#   --keep         keep the logs and state dirs (their paths are printed)
#
# Steps: tests/arm/rootfs.sh makes or reuses the cached arm64 bookworm rootfs (python3 and,
# on purpose, Debian's python3-zope.interface); inside it, under qemu: `version`, and the
# Debian .pth hijack check (`python3 X.pyz` must re-exec itself isolated); on the host: the
# cloud (`.venv/bin/python -m kubeedge_tw cloud`, free 127.0.0.1 ports) and `gettoken`;
# inside the rootfs: `join`, then `edge` until the cloud logs "node <name> connected", a
# second (warm) start, and the same natively with the host's .pyz for comparison. When the
# cloud serves the embedded API server (it writes <cloud state>/kubeconfig) and runs the
# EdgeController, the edge runs edged, and the host has a Docker engine (its socket is lent
# to the emulated edge as container runtime), `kubectl get nodes` must show the node Ready;
# otherwise that check is skipped and the missing piece printed.
#
# Needs root (chroot, debootstrap), debootstrap, qemu-user-static; scripts/test.sh installs
# them. Exit status 0 when every check passed, 1 otherwise; the last line is
# "arm64: N checks passed, N failed".
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
venv="${KUBEEDGE_TW_VENV:-$top/.venv}"
py="$venv/bin/python"
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$top/kubeedge_tw/__init__.py")
host_arch=$(uname -m)

pyz="$top/dist/kubeedge-edge-$version-aarch64.pyz"
native_pyz="$top/dist/kubeedge-edge-$version-$host_arch.pyz"
rootfs_mode=auto
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --pyz) pyz=${2:?}; shift 2 ;;
    --native-pyz) native_pyz=${2:?}; shift 2 ;;
    --rootfs-mode) rootfs_mode=${2:?}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,22s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "tests/arm/run_pyz_arm64.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

say() { printf '==> %s\n' "$*"; }
die() { printf 'tests/arm/run_pyz_arm64.sh: %s\n' "$*" >&2; echo "arm64: 0 checks passed, 1 failed"; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

[ "$(id -u)" = 0 ] || die "needs root (chroot into the arm64 rootfs)"
[ -x "$py" ] || die "no virtualenv at $venv (scripts/test.sh creates it)"
[ -f "$pyz" ] || die "no $pyz: run scripts/build_pyz.sh --arch aarch64 --side edge first"
if [ "$native_pyz" = none ] || [ ! -f "$native_pyz" ]; then native_pyz=""; fi
# From here on failures are counted, not fatal.
set +e

passed=0
failed=0
check() {  # check NAME CONDITION-STATUS [DETAIL]
  if [ "$2" = 0 ]; then passed=$((passed + 1)); say "PASS $1${3:+ ($3)}"
  else failed=$((failed + 1)); say "FAIL $1${3:+ ($3)}"; fi
}
declare -A timing

# -- the rootfs ------------------------------------------------------------------------------
t0=$(now)
rootfs=$("$top/tests/arm/rootfs.sh" --mode "$rootfs_mode") || die "could not make the arm64 rootfs"
timing[rootfs]=$(secs "$t0" "$(now)")
in_rootfs=("$top/tests/arm/in_rootfs.sh" "$rootfs")
clean_env=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb)
binfmt=1
{ [ -r /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && head -1 /proc/sys/fs/binfmt_misc/qemu-aarch64 | grep -qx enabled; } || binfmt=0

# Everything of this run inside the rootfs lives under /tmp/kubeedge-arm64-test.
inner=/tmp/kubeedge-arm64-test
rm -rf "$rootfs$inner"
mkdir -p "$rootfs$inner"
cp "$pyz" "$rootfs$inner/"
ipyz="$inner/$(basename "$pyz")"
work=$(mktemp -d "${TMPDIR:-/tmp}/kubeedge-arm64.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [ "$keep" = 1 ]; then
    echo "kept: $work (native cloud/edge) and $rootfs$inner (arm64 edge)"
  else
    rm -rf "$work" "${rootfs:?}$inner"
  fi
}
trap cleanup EXIT

# python3 in the rootfs, with a clean environment; every step exec's the next, so a
# background job's $! is the emulated python3 itself.
arm_py=("${clean_env[@]}" SHIV_ROOT="$inner/shiv" "${in_rootfs[@]}" /usr/bin/python3)
arm() { "${arm_py[@]}" "$@"; }
# The edge itself gets the host's Docker engine as its container runtime when there is one
# (edged reports the node NotReady without a runtime, like the kubelet).
edge_py=("${arm_py[@]}")
if [ -S /var/run/docker.sock ]; then
  edge_py=("${clean_env[@]}" SHIV_ROOT="$inner/shiv" "$top/tests/arm/in_rootfs.sh" --docker "$rootfs" /usr/bin/python3)
fi

wait_count() {  # wait_count FILE PATTERN N SECONDS PID: N matching lines, while PID lives
  local deadline=$(( $(date +%s) + $4 ))
  while [ "$(date +%s)" -le "$deadline" ]; do
    [ "$(grep -c -- "$2" "$1" 2>/dev/null || true)" -ge "$3" ] && return 0
    kill -0 "$5" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

stop_pid() {  # SIGTERM a process we started and wait for it (by PID)
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 1 300); do kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}

# -- 1. version under qemu, cold and warm -----------------------------------------------------
say "arm64 rootfs: $rootfs ($( [ $binfmt = 1 ] && echo 'binfmt_misc' || echo 'explicit qemu-aarch64-static'))"
t0=$(now); out=$(arm -I -S "$ipyz" version 2>&1) || true; timing[qemu_version_cold]=$(secs "$t0" "$(now)")
echo "$out" | sed 's/^/    /'
echo "$out" | grep -q "^kubeedge-tw $version " && echo "$out" | grep -q "aarch64)"
check "version runs on arm64 under qemu" $?
t0=$(now); arm -I -S "$ipyz" version >/dev/null 2>&1 || true; timing[qemu_version_warm]=$(secs "$t0" "$(now)")

# -- 2. Debian's zope .pth hijack ---------------------------------------------------------------
hijack=$(arm -c 'import sys; m = sys.modules.get("zope"); print(list(getattr(m, "__path__", [])) if m else "none")' 2>&1 || true)
say "python3 with site on, before importing anything: sys.modules['zope'].__path__ = $hijack"
if [ "$binfmt" = 1 ]; then
  out=$(arm "$ipyz" edge --help 2>&1); rc=$?
  echo "$out" | grep -q "EdgeHub" && [ $rc = 0 ]
  check "'python3 X.pyz edge --help' (site on, re-exec with -I -S) despite python3-zope.interface" $?
  out=$("${clean_env[@]}" SHIV_ROOT="$inner/shiv" KUBEEDGE_TW_PYZ_REEXEC=1 "${in_rootfs[@]}" \
        /usr/bin/python3 "$ipyz" edge --help 2>&1) && rc=0 || rc=$?
  if [ $rc = 0 ]; then
    say "info: without the re-exec (site on) 'edge --help' still worked here"
  else
    say "info: without the re-exec (site on) 'edge --help' fails, as expected:"
    echo "$out" | grep -v '^warning: re-run' | tail -3 | sed 's/^/    /'
  fi
else
  say "skipping the plain 'python3 X.pyz' check: without binfmt_misc an emulated program cannot re-exec itself"
fi

# -- 3. the native cloud ----------------------------------------------------------------------
read -r ws https api < <("$py" -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks:
    s.close()')
cloud_state="$work/cloud"
mkdir -p "$cloud_state"
cat >"$work/cloudcore.yaml" <<EOF
apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
modules:
  cloudHub:
    advertiseAddress: [127.0.0.1]
    websocket: {address: 127.0.0.1, port: $ws}
    https: {address: 127.0.0.1, port: $https}
  apiServer: {address: 127.0.0.1, port: $api}
EOF
say "starting the cloud natively (websocket 127.0.0.1:$ws, bootstrap https $https, API $api)"
cloud_log="$work/cloud.log"
"$py" -m kubeedge_tw cloud --config "$work/cloudcore.yaml" --state-dir "$cloud_state" >"$cloud_log" 2>&1 &
cloud_pid=$!
pids+=("$cloud_pid")
wait_count "$cloud_log" "kubeedge-cloud started" 1 60 "$cloud_pid" \
  || { tail -20 "$cloud_log"; die "the cloud did not start (log above)"; }
token=$("$py" -m kubeedge_tw gettoken --config "$work/cloudcore.yaml" --state-dir "$cloud_state" --ttl 1h) \
  || die "gettoken failed"

# -- 4. join and run the arm64 edge, cold then warm ---------------------------------------------
node=arm64-edge-1
t0=$(now)
out=$(arm -I -S "$ipyz" join --cloud "127.0.0.1:$ws" --https-port "$https" --token "$token" \
      --node "$node" --state-dir "$inner/edge" 2>&1) && rc=0 || rc=$?
timing[qemu_join]=$(secs "$t0" "$(now)")
echo "$out" | sed 's/^/    /'
check "join from the emulated arm64 edge" $rc
rm -rf "$rootfs$inner/shiv"   # the first edge start is a cold one again

run_edge() {  # run_edge LABEL N LOG COMMAND...: start, wait for the Nth "connected", stop
  local label=$1 n=$2 log=$3; shift 3  # then the command: an external program, not a function
  local t0 pid rc=0
  t0=$(now)
  edge_t0=$t0
  "$@" >"$log" 2>&1 &
  pid=$!
  pids+=("$pid")
  if wait_count "$cloud_log" "node $node connected" "$n" 240 "$pid"; then
    timing[$label]=$(secs "$t0" "$(now)")
    [ -z "${while_connected:-}" ] || "$while_connected" "$log"
  else
    rc=1
    tail -15 "$log" | sed 's/^/    edge: /'
  fi
  stop_pid "$pid"
  return $rc
}

# Ready in `kubectl get nodes` needs the embedded API server (it writes <state>/kubeconfig),
# the cloud's EdgeController (it makes the Node object) and the edge's edged (it reports
# node status). Each side names its modules in its "starting ... modules: ..." log line.
kubectl_result=""
kubectl_check() {  # kubectl_check EDGE-LOG: sets kubectl_result to passed, failed: ... or skipped: ...
  local missing=() deadline line=""
  [ -f "$cloud_state/kubeconfig" ] || missing+=("the cloud wrote no $cloud_state/kubeconfig (no embedded API server)")
  grep -q "kubeedge-cloud starting.*modules:.*edgecontroller" "$cloud_log" \
    || missing+=("the cloud runs no EdgeController (nothing makes the Node object)")
  grep -q "kubeedge-edge starting.*modules:.*edged" "$1" \
    || missing+=("the edge runs no edged module (nothing reports node status)")
  [ -S /var/run/docker.sock ] \
    || missing+=("no Docker engine on this host to lend the emulated edge (without a container runtime edged reports NotReady)")
  if [ ${#missing[@]} -gt 0 ]; then
    kubectl_result="skipped: $(IFS=';'; echo "${missing[*]}" | sed 's/;/; /g')"
    return 0
  fi
  command -v kubectl >/dev/null || { kubectl_result="failed: kubectl is not installed"; return 0; }
  deadline=$(( $(date +%s) + 90 ))
  while [ "$(date +%s)" -le "$deadline" ]; do
    line=$(kubectl --kubeconfig "$cloud_state/kubeconfig" get nodes --no-headers 2>&1 | awk -v n="$node" '$1 == n' || true)
    if [ "$(echo "$line" | awk '{print $2}')" = Ready ]; then
      timing[qemu_ready]=$(secs "$edge_t0" "$(now)")
      kubectl_result="passed: $line"; return 0
    fi
    sleep 1
  done
  kubectl_result="failed: within 90 s kubectl get nodes showed ${line:-no $node}"
}

if [ $rc = 0 ]; then
  while_connected=kubectl_check
  run_edge qemu_edge_cold 1 "$rootfs$inner/edge-cold.log" \
    "${edge_py[@]}" -I -S "$ipyz" edge --config "$inner/edge/edgecore.yaml" && rc=0 || rc=$?
  check "arm64 edge (cold start) connects: cloud logs 'node $node connected'" $rc "${timing[qemu_edge_cold]:-timeout} s"
  while_connected=""
  run_edge qemu_edge_warm 2 "$rootfs$inner/edge-warm.log" \
    "${edge_py[@]}" -I -S "$ipyz" edge --config "$inner/edge/edgecore.yaml" && rc=0 || rc=$?
  check "arm64 edge (warm start) connects again" $rc "${timing[qemu_edge_warm]:-timeout} s"
  case "$kubectl_result" in
    passed*) check "kubectl get nodes shows $node Ready" 0 "${kubectl_result#passed: }" ;;
    failed*) check "kubectl get nodes shows $node Ready" 1 "${kubectl_result#failed: }" ;;
    skipped*) say "SKIP kubectl get nodes shows $node Ready: ${kubectl_result#skipped: }" ;;
  esac
fi

# -- 5. the same natively, for comparison ----------------------------------------------------
if [ -n "$native_pyz" ]; then
  nshiv="$work/shiv"
  native_py=(env SHIV_ROOT="$nshiv" /usr/bin/python3 -I -S "$native_pyz")
  native() { "${native_py[@]}" "$@"; }
  t0=$(now); native version >/dev/null 2>&1 || true; timing[native_version_cold]=$(secs "$t0" "$(now)")
  t0=$(now); native version >/dev/null 2>&1 || true; timing[native_version_warm]=$(secs "$t0" "$(now)")
  node=native-edge-1
  t0=$(now)
  native join --cloud "127.0.0.1:$ws" --https-port "$https" --token "$token" --node "$node" \
    --state-dir "$work/edge" >"$work/join.log" 2>&1 && rc=0 || rc=$?
  timing[native_join]=$(secs "$t0" "$(now)")
  check "join natively with $(basename "$native_pyz")" $rc
  if [ $rc = 0 ]; then
    rm -rf "$nshiv/$(basename "$native_pyz")"_*   # cold again for the edge start
    run_edge native_edge_cold 1 "$work/edge-cold.log" "${native_py[@]}" edge --config "$work/edge/edgecore.yaml" && rc=0 || rc=$?
    check "native edge (cold start) connects" $rc "${timing[native_edge_cold]:-timeout} s"
    run_edge native_edge_warm 2 "$work/edge-warm.log" "${native_py[@]}" edge --config "$work/edge/edgecore.yaml" && rc=0 || rc=$?
    check "native edge (warm start) connects again" $rc "${timing[native_edge_warm]:-timeout} s"
  fi
else
  say "no native edge .pyz for $host_arch in dist/: native timings skipped"
fi

# -- 6. figures --------------------------------------------------------------------------------
t() { echo "${timing[$1]:--}"; }
cat <<EOF

timings (seconds; cold = empty SHIV_ROOT: unzip + first compile, warm = unpacked and compiled)
                                        native ($host_arch)   qemu-user (aarch64)
  version, cold                         $(printf '%-20s' "$(t native_version_cold)") $(t qemu_version_cold)
  version, warm                         $(printf '%-20s' "$(t native_version_warm)") $(t qemu_version_warm)
  join                                  $(printf '%-20s' "$(t native_join)") $(t qemu_join)
  edge start -> connected, cold         $(printf '%-20s' "$(t native_edge_cold)") $(t qemu_edge_cold)
  edge start -> connected, warm         $(printf '%-20s' "$(t native_edge_warm)") $(t qemu_edge_warm)
  edge start -> Ready in kubectl, cold  $(printf '%-20s' -) $(t qemu_ready)
  arm64 rootfs (create or reuse)        ${timing[rootfs]}
EOF
echo "arm64: $passed checks passed, $failed failed"
[ "$failed" = 0 ]
