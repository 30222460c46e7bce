#!/usr/bin/env bash
# Start kubeedge-tw's cloud and edge sides on this host.
#
#   scripts/demo.sh          set up (virtualenv + install) and start both sides
#   scripts/demo.sh status   show what runs
#   scripts/demo.sh stop     stop what this script started (by the PIDs in its pidfiles)
#
# State, logs and pidfiles live under $KUBEEDGE_TW_DEMO_DIR (default: .state/ in the
# repository): cloud/ and edge/. A second run reuses what exists and what already runs.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
venv="${KUBEEDGE_TW_VENV:-$top/.venv}"
python="${PYTHON:-python3}"
demo_dir="${KUBEEDGE_TW_DEMO_DIR:-$top/.state}"
node_name="${KUBEEDGE_TW_NODE:-edge-node}"

say() { printf '==> %s\n' "$*"; }
die() { printf 'scripts/demo.sh: step failed: %s\n' "$*" >&2; exit 1; }

pid_of() {  # pid_of SIDE: the PID from SIDE's pidfile if that process is alive
  local f="$demo_dir/$1/kubeedge-$1.pid"
  [ -f "$f" ] || return 1
  local pid; pid=$(cat "$f" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && { echo "$pid"; return 0; }
  return 1
}

stop_side() {
  local side=$1 pid
  if pid=$(pid_of "$side"); then
    say "stopping kubeedge-$side (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    die "kubeedge-$side (pid $pid) did not stop within 10 s"
  else
    say "kubeedge-$side is not running"
  fi
}

start_side() {  # start_side SIDE ARGS...
  local side=$1; shift
  local dir="$demo_dir/$side" pid
  mkdir -p "$dir"
  if pid=$(pid_of "$side"); then
    say "kubeedge-$side already runs (pid $pid), reusing it"
    return 0
  fi
  say "starting kubeedge-$side, log $dir/kubeedge-$side.log"
  setsid nohup "$venv/bin/python" -m kubeedge_tw "$side" --state-dir "$dir" "$@" \
    >"$dir/kubeedge-$side.log" 2>&1 < /dev/null &
  for _ in $(seq 1 150); do
    if grep -q "kubeedge-$side started" "$dir/kubeedge-$side.log" 2>/dev/null; then
      say "kubeedge-$side runs (pid $(pid_of "$side" || echo '?'))"
      return 0
    fi
    if ! kill -0 $! 2>/dev/null; then
      tail -20 "$dir/kubeedge-$side.log" >&2
      die "kubeedge-$side exited during start-up (log above)"
    fi
    sleep 0.2
  done
  tail -20 "$dir/kubeedge-$side.log" >&2
  die "kubeedge-$side did not report started within 30 s"
}

case "${1:-start}" in
  stop)
    stop_side edge
    stop_side cloud
    exit 0 ;;
  status)
    for side in cloud edge; do
      if pid=$(pid_of "$side"); then say "kubeedge-$side runs (pid $pid)"; else say "kubeedge-$side is not running"; fi
    done
    exit 0 ;;
  start) ;;
  *) die "unknown command '$1' (use start, status or stop)" ;;
esac

# 1. virtualenv and package
if [ ! -x "$venv/bin/python" ]; then
  say "creating virtualenv $venv"
  "$python" -m venv "$venv" || die "could not create a virtualenv with $python (install python3-venv)"
fi
say "installing kubeedge-tw into $venv"
mkdir -p "$demo_dir"
"$venv/bin/python" -m pip install -q --disable-pip-version-check . >"$demo_dir/pip.log" 2>&1 \
  || { tail -20 "$demo_dir/pip.log" >&2; die "pip install ."; }

# 2. the cloud; it makes its CA and CloudHub certificate in its state dir on first start
start_side cloud --config conf/cloudcore.yaml

# 3. the edge joins with a token (like keadm gettoken / keadm join), then starts
edge_dir="$demo_dir/edge"
if [ ! -f "$edge_dir/edgecore.yaml" ]; then
  say "getting a join token and joining node $node_name"
  token=$("$venv/bin/python" -m kubeedge_tw gettoken --config conf/cloudcore.yaml \
    --state-dir "$demo_dir/cloud") || die "gettoken"
  "$venv/bin/python" -m kubeedge_tw join --cloud 127.0.0.1:10000 --token "$token" \
    --node "$node_name" --state-dir "$edge_dir" >"$demo_dir/join.log" 2>&1 \
    || { cat "$demo_dir/join.log" >&2; die "join"; }
else
  say "edge already joined ($edge_dir/edgecore.yaml), reusing it"
fi
start_side edge --config "$edge_dir/edgecore.yaml"
for _ in $(seq 1 100); do
  grep -q "cloudhub_node_connected\|node $node_name connected" "$demo_dir/cloud/kubeedge-cloud.log" && break
  sleep 0.2
done
grep -q "node $node_name connected" "$demo_dir/cloud/kubeedge-cloud.log" \
  || die "the edge did not connect to the cloud within 20 s (see $edge_dir/kubeedge-edge.log)"
say "edge $node_name is connected to the cloud"

cat <<EOT

kubeedge-tw runs on this host:
  cloud: $demo_dir/cloud (log kubeedge-cloud.log)
  edge:  $demo_dir/edge  (log kubeedge-edge.log), node name $node_name
Status: scripts/demo.sh status
Stop:   scripts/demo.sh stop
EOT
