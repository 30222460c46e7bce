#!/usr/bin/env bash
# The walkthrough on one host: cloud (with its embedded Kubernetes API) and a joined edge,
# the example app deployed with kubectl and fetched through its hostPort.
#
#   scripts/demo.sh          set up and run it all (a second run reuses what exists)
#   scripts/demo.sh status   show what runs
#   scripts/demo.sh stop     stop what this script started (by the PIDs in its pidfiles)
#
# Steps: 1. virtualenv + package (and, as root, Debian's docker.io, kubernetes-client and
# mosquitto-clients when missing; dockerd started with host networking only); 2. the sample
# image, built offline (scripts/sample_image.sh); 3. `twistd kubeedge-cloud`, a join token,
# `kubeedge_tw join`, `twistd kubeedge-edge`; 4. kubectl apply conf/examples/deployment.yaml,
# wait, show nodes and pods, fetch the app on 127.0.0.1:8080; 5. how to go on.
#
# State, logs and pidfiles live under $KUBEEDGE_TW_DEMO_DIR (default: .state/ in the
# repository): cloud/ and edge/. The virtualenv is $KUBEEDGE_TW_VENV (default .venv).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
venv="${KUBEEDGE_TW_VENV:-$top/.venv}"
python="${PYTHON:-python3}"
demo_dir="${KUBEEDGE_TW_DEMO_DIR:-$top/.state}"
node_name="${KUBEEDGE_TW_NODE:-edge-node}"
app_port=8080          # conf/examples/deployment.yaml's hostPort
mqtt_port=1884         # the edge's internal MQTT broker (eventBus mqttMode 0)
step="start"

say() { printf '==> %s\n' "$*"; }
die() { printf '\nscripts/demo.sh: step "%s" failed: %s\n' "$step" "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

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
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    die "kubeedge-$side (pid $pid) did not stop within 20 s"
  else
    say "kubeedge-$side is not running"
  fi
}

start_side() {  # start_side SIDE ARGS...
  local side=$1; shift
  local dir="$demo_dir/$side" pid log
  mkdir -p "$dir"
  log="$dir/kubeedge-$side.log"
  if pid=$(pid_of "$side"); then
    say "kubeedge-$side already runs (pid $pid), reusing it"
    return 0
  fi
  say "starting twistd kubeedge-$side, log $log"
  setsid nohup "$venv/bin/twistd" --logger kubeedge_tw.common.log.text_observer \
    -n "kubeedge-$side" --state-dir "$dir" "$@" >"$log" 2>&1 < /dev/null &
  local child=$!
  for _ in $(seq 1 300); do
    if grep -q "kubeedge-$side started" "$log" 2>/dev/null; then
      say "kubeedge-$side runs (pid $(pid_of "$side" || echo $child))"
      return 0
    fi
    if ! kill -0 "$child" 2>/dev/null; then
      tail -20 "$log" >&2
      die "kubeedge-$side exited during start-up (log above, whole log $log)"
    fi
    sleep 0.2
  done
  tail -20 "$log" >&2
  die "kubeedge-$side did not report started within 60 s (log $log)"
}

case "${1:-start}" in
  stop)
    step="stop"
    stop_side edge
    stop_side cloud
    # The containers the demo's edge ran (an edge keeps its pods running when it stops).
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
      ids=$(docker ps -aq --filter "label=io.kubeedge-tw.node=$node_name")
      if [ -n "$ids" ]; then
        say "removing the containers of node $node_name"
        docker rm -f $ids >/dev/null
      fi
    fi
    say "stopped (dockerd, if the demo started it, keeps running)"
    exit 0 ;;
  status)
    for side in cloud edge; do
      if pid=$(pid_of "$side"); then say "kubeedge-$side runs (pid $pid)"; else say "kubeedge-$side is not running"; fi
    done
    exit 0 ;;
  start) ;;
  *) die "unknown command '$1' (use start, status or stop)" ;;
esac

apt_install() {  # apt_install PACKAGE...: as root only, once per run
  is_root || return 1
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${apt_updated:-}" ]; then
    apt-get update -q >"$demo_dir/apt.log" 2>&1 || { tail -20 "$demo_dir/apt.log" >&2; return 1; }
    apt_updated=yes
  fi
  apt-get install -y -q --no-install-recommends "$@" >>"$demo_dir/apt.log" 2>&1 \
    || { tail -20 "$demo_dir/apt.log" >&2; return 1; }
}

# 1. virtualenv, package, Docker engine, kubectl ------------------------------------------------
step="1 install"
mkdir -p "$demo_dir"
if [ ! -x "$venv/bin/python" ]; then
  say "creating virtualenv $venv"
  "$python" -m venv "$venv" || die "could not create a virtualenv with $python (install python3-venv)"
fi
say "installing kubeedge-tw into $venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check . >"$demo_dir/pip.log" 2>&1 \
  || { tail -20 "$demo_dir/pip.log" >&2; die "pip install . (log $demo_dir/pip.log)"; }

if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
  if is_root; then
    say "installing Debian's docker.io"
    apt_install docker.io || die "apt-get install docker.io (log $demo_dir/apt.log)"
  elif ! command -v docker >/dev/null 2>&1; then
    die "no docker command: install the Debian package docker.io (or run this as root)"
  fi
fi
if ! docker info >/dev/null 2>&1; then
  if is_root && command -v dockerd >/dev/null 2>&1; then
    say "starting dockerd with host networking only, log $demo_dir/dockerd.log"
    setsid nohup dockerd --bridge=none --iptables=false --ip-masq=false \
      >"$demo_dir/dockerd.log" 2>&1 < /dev/null &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -20 "$demo_dir/dockerd.log" >&2; die "dockerd did not answer within 60 s"; }
  else
    die "the Docker engine does not answer (docker info): start dockerd, or run this as root"
  fi
fi
if ! command -v kubectl >/dev/null 2>&1; then
  if is_root; then
    say "installing Debian's kubernetes-client (kubectl)"
    apt_install kubernetes-client || die "apt-get install kubernetes-client (log $demo_dir/apt.log)"
  else
    die "no kubectl: install kubectl (Debian package kubernetes-client)"
  fi
fi
if ! command -v mosquitto_pub >/dev/null 2>&1 && is_root; then
  say "installing Debian's mosquitto-clients (for the device example)"
  apt_install mosquitto-clients || say "mosquitto-clients not installed; the device example needs it"
fi

# 2. the sample image ---------------------------------------------------------------------------
step="2 sample image"
say "building the sample image (busybox-static, no registry needed)"
image=$(bash scripts/sample_image.sh) || die "scripts/sample_image.sh"
say "image $image is there"

# 3. cloud, token, join, edge -------------------------------------------------------------------
step="3 cloud and edge"
start_side cloud --config conf/cloudcore.yaml
kubeconfig="$demo_dir/cloud/kubeconfig"
export KUBECONFIG="$kubeconfig"
for _ in $(seq 1 100); do
  [ -f "$kubeconfig" ] && kubectl get namespaces >/dev/null 2>&1 && break
  sleep 0.2
done
kubectl get namespaces >/dev/null 2>&1 \
  || die "kubectl does not reach the embedded API server with $kubeconfig (see $demo_dir/cloud/kubeedge-cloud.log)"

edge_dir="$demo_dir/edge"
if [ ! -f "$edge_dir/edgecore.yaml" ]; then
  say "getting a join token and joining node $node_name"
  token=$("$venv/bin/python" -m kubeedge_tw gettoken --config conf/cloudcore.yaml \
    --state-dir "$demo_dir/cloud") || die "python -m kubeedge_tw gettoken"
  "$venv/bin/python" -m kubeedge_tw join --cloud 127.0.0.1:10000 --token "$token" \
    --node "$node_name" --state-dir "$edge_dir" >"$demo_dir/join.log" 2>&1 \
    || { cat "$demo_dir/join.log" >&2; die "python -m kubeedge_tw join"; }
  # Devices talk to the broker inside the edge (mqttMode 0), so no mosquitto server is needed.
  "$venv/bin/python" - "$edge_dir/edgecore.yaml" "$mqtt_port" <<'PY' || die "editing edgecore.yaml"
import sys
import yaml
path, port = sys.argv[1], sys.argv[2]
with open(path) as f:
    config = yaml.safe_load(f)
config["modules"]["eventBus"] = {"mqttMode": 0,
                                 "mqttServerInternal": "tcp://127.0.0.1:" + port}
with open(path, "w") as f:
    yaml.safe_dump(config, f, sort_keys=False)
PY
else
  say "edge already joined ($edge_dir/edgecore.yaml), reusing it"
fi
start_side edge --config "$edge_dir/edgecore.yaml"
say "waiting for node $node_name to be Ready"
for _ in $(seq 1 150); do
  [ "$(kubectl get node "$node_name" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] && break
  sleep 0.2
done
[ "$(kubectl get node "$node_name" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] \
  || die "node $node_name is not Ready after 30 s (see $edge_dir/kubeedge-edge.log)"

# 4. the app ------------------------------------------------------------------------------------
step="4 deploy the app"
say "kubectl apply -f conf/examples/deployment.yaml"
kubectl apply -f conf/examples/deployment.yaml || die "kubectl apply"
kubectl rollout status deployment/sample-app --timeout=120s \
  || { kubectl get pods -o wide >&2; kubectl describe pods -l app=sample-app >&2 || true
       die "deployment sample-app did not become available within 120 s"; }
echo
say "kubectl get nodes"
kubectl get nodes
say "kubectl get pods -o wide"
kubectl get pods -o wide
say "GET http://127.0.0.1:$app_port/ (the app, through its hostPort)"
page=""
for _ in $(seq 1 50); do
  page=$("$venv/bin/python" -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://127.0.0.1:$app_port/" 2>/dev/null) && break
  sleep 0.2
done
[ -n "$page" ] || die "the app does not answer on http://127.0.0.1:$app_port/"
printf '%s\n' "$page"

# The example device (bound to this node), so that the MQTT command below works as printed.
kubectl apply -f conf/examples/device-model.yaml >/dev/null \
  || die "kubectl apply -f conf/examples/device-model.yaml"
sed "s/^\( *- \)edge-node\$/\1$node_name/" conf/examples/device.yaml | kubectl apply -f - >/dev/null \
  || die "kubectl apply -f conf/examples/device.yaml (node $node_name)"

# 5. how to go on -------------------------------------------------------------------------------
cat <<EOT

kubeedge-tw runs on this host:
  cloud: $demo_dir/cloud (log kubeedge-cloud.log, pid $(pid_of cloud || echo '?'))
  edge:  $demo_dir/edge  (log kubeedge-edge.log, pid $(pid_of edge || echo '?')), node $node_name

Use kubectl against the cloud's embedded Kubernetes API:
  export KUBECONFIG=$kubeconfig
  kubectl get nodes
  kubectl get pods -o wide
  kubectl apply -f conf/examples/configmap-pod.yaml

Be the mapper of the example device (conf/examples/device.yaml): report its state, then see it
in the cloud:
  mosquitto_pub -h 127.0.0.1 -p $mqtt_port -t '\$hw/events/device/led-light-1/twin/update' \\
    -m '{"event_id":"","timestamp":0,"twin":{"power-status":{"actual":{"value":"OFF"},"metadata":{"type":"string"}}}}'
  kubectl get device led-light-1 -o yaml      # status.twins[].reported.value: "OFF"
  mosquitto_sub -h 127.0.0.1 -p $mqtt_port -t '\$hw/events/device/led-light-1/twin/update/delta'

Status: scripts/demo.sh status
Stop:   scripts/demo.sh stop     (stops only what this script started)
EOT
