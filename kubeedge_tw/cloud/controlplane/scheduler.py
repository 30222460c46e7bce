"""The scheduler (kube-scheduler's default profile, the parts an edge cluster uses).

Pods whose ``spec.schedulerName`` is ours (``default-scheduler``, or unset) and that have no
``spec.nodeName`` are bound through the ``pods/binding`` subresource to a node that passes,
in kube-scheduler's filter order:

1. **NodeUnschedulable**: ``spec.unschedulable`` nodes only for pods tolerating
   ``node.kubernetes.io/unschedulable:NoSchedule``;
2. **TaintToleration**: every ``NoSchedule``/``NoExecute`` taint tolerated. A node whose
   ``Ready`` condition is not ``True`` counts as tainted ``node.kubernetes.io/not-ready``
   (``Unknown``: ``node.kubernetes.io/unreachable``) even before the node lifecycle
   controller has written that taint (``TaintNodesByCondition``), so only Ready nodes get
   pods unless a pod tolerates that;
3. **NodeAffinity**: ``nodeSelector`` and required node affinity (``In``, ``NotIn``,
   ``Exists``, ``DoesNotExist``, ``Gt``, ``Lt``; ``matchFields`` on ``metadata.name``);
4. **NodePorts**: no host port conflict (protocol, host IP, port). Our edges run every pod
   on the host network, so a ``containerPort`` is a host port too;
5. **NodeResourcesFit**: pod count, cpu, memory and any other requested resource fit in
   allocatable minus the requests of the pods already there (requests are the sum over
   containers, at least each init container's, plus overhead; a missing request defaults
   to the limit).

Of the nodes that pass, the one with the **least requested** cpu and memory wins
(``NodeResourcesFit`` ``LeastAllocated`` scoring with the non-zero defaults of 100m and
200Mi for requests not set); ties go to the first node name. As kube-scheduler does, with
many nodes the search stops once ``percentageOfNodesToScore`` (adaptive: 50 % minus 1 % per
125 nodes, at least 5 %, at least 100 nodes) feasible nodes were found, starting where the
previous search stopped.

Speed: a node's aggregates (requested resources, pod count, host ports) are kept
incrementally from the pod informer, and a pod is *assumed* on its node the moment it is
chosen, before the bind returns (the scheduler cache's assume/forget). The static filters
(1-3) depend only on the nodes and on the pod's selector, affinity and tolerations, so
their result is cached per such signature until a node changes: the pods of one
Deployment share one entry.

A pod that fits nowhere gets the ``PodScheduled=False`` condition, reason
``Unschedulable``, with kube-scheduler's message (``0/3 nodes are available: 1 node(s) had
untolerated taint {dedicated: gpu}, 2 node(s) didn't match Pod's node affinity/selector.``:
one count per reason, sorted) and a ``FailedScheduling`` event. It waits in the
unschedulable pool until a node is added or changes in a way that matters (not a mere
heartbeat) or a bound pod goes away; it is then retried after its backoff (1 s doubling to
10 s per attempt), and every pod still unschedulable is retried after
``unschedulable_timeout`` (60 s) anyway. A bound pod gets a ``Scheduled`` event.
"""

import collections
import json

from twisted.internet import task

from kubeedge_tw.cloud.controlplane.base import Controller
from kubeedge_tw.cloud.controlplane.events import NORMAL, WARNING
from kubeedge_tw.cloud.controlplane.util import (
    format_time, get_condition, meta, milli_value, object_key, split_key, whole_value)
from kubeedge_tw.cloud.k8s import Conflict, K8sError, NotFound

__all__ = ["Scheduler", "PodInfo", "NodeInfo", "pod_info", "tolerates", "node_affinity_matches",
           "DEFAULT_SCHEDULER_NAME"]

DEFAULT_SCHEDULER_NAME = "default-scheduler"

#: kube-scheduler's filter failure reasons, word for word.
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_PORTS = "node(s) didn't have free ports for the requested pod ports"
REASON_TAINT = "node(s) had untolerated taint {{{}: {}}}"
REASON_TOO_MANY_PODS = "Too many pods"
NO_NODES = "no nodes available to schedule pods"

TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"

#: ``schedutil.DefaultMilliCPURequest`` / ``DefaultMemoryRequest``, for scoring only.
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024

_FILTER_EFFECTS = ("NoSchedule", "NoExecute")


# -- pods ----------------------------------------------------------------------------------


class PodInfo:
    """What the scheduler needs of a pod: its requests and host ports."""

    __slots__ = ("cpu", "mem", "scalar", "nz_cpu", "nz_mem", "ports")

    def __init__(self, cpu=0, mem=0, scalar=None, nz_cpu=0, nz_mem=0, ports=()):
        """Millicores, bytes, ``{resource: amount}``, non-zero cpu/memory for scoring, and
        ``(protocol, host IP, port)`` triples."""
        self.cpu, self.mem, self.scalar = cpu, mem, scalar or {}
        self.nz_cpu, self.nz_mem, self.ports = nz_cpu, nz_mem, ports


def _amount(name, value):
    try:
        return milli_value(value) if name == "cpu" else whole_value(value)
    except ValueError:
        return 0  # the API server validates quantities; never fail a pod over one


def _container_requests(container):
    resources = container.get("resources") or {}
    requests = dict(resources.get("requests") or {})
    for name, value in (resources.get("limits") or {}).items():
        requests.setdefault(name, value)  # API defaulting: an unset request is the limit
    return {name: _amount(name, value) for name, value in requests.items()}


def pod_info(pod):
    """The :class:`PodInfo` of ``pod`` (``resourcehelper.PodRequests`` and the host ports)."""
    spec = pod.get("spec") or {}
    total = collections.Counter()
    nz_cpu = nz_mem = 0
    ports = []
    for container in spec.get("containers") or ():
        requests = _container_requests(container)
        total.update(requests)
        nz_cpu += requests.get("cpu") or DEFAULT_MILLI_CPU
        nz_mem += requests.get("memory") or DEFAULT_MEMORY
        for port in container.get("ports") or ():
            number = port.get("hostPort") or port.get("containerPort")
            if number:
                ports.append((port.get("protocol") or "TCP", port.get("hostIP") or "0.0.0.0",
                              number))
    for container in spec.get("initContainers") or ():
        for name, amount in _container_requests(container).items():
            if amount > total[name]:
                total[name] = amount
    for name, value in (spec.get("overhead") or {}).items():
        total[name] += _amount(name, value)
    scalar = {name: amount for name, amount in total.items()
              if name not in ("cpu", "memory", "pods") and amount}
    return PodInfo(total.get("cpu", 0), total.get("memory", 0), scalar, nz_cpu, nz_mem,
                   tuple(ports))


def tolerates(tolerations, key, value, effect):
    """``v1.Toleration.ToleratesTaint`` for any of ``tolerations``."""
    for toleration in tolerations:
        t_effect = toleration.get("effect") or ""
        if t_effect and t_effect != effect:
            continue
        t_key = toleration.get("key") or ""
        if t_key and t_key != key:
            continue
        operator = toleration.get("operator") or "Equal"
        if operator == "Exists":
            return True
        if operator == "Equal" and (toleration.get("value") or "") == value:
            return True
    return False


def _expression_matches(expression, labels):
    key, operator = expression.get("key"), expression.get("operator")
    values = expression.get("values") or ()
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator in ("Gt", "Lt"):
        if key not in labels or len(values) != 1:
            return False
        try:
            have, want = int(labels[key]), int(values[0])
        except (TypeError, ValueError):
            return False
        return have > want if operator == "Gt" else have < want
    return False


def _term_matches(term, labels, name):
    expressions = term.get("matchExpressions") or ()
    fields = term.get("matchFields") or ()
    if not expressions and not fields:
        return False  # an empty term matches no objects
    for expression in expressions:
        if not _expression_matches(expression, labels):
            return False
    for field in fields:
        if field.get("key") != "metadata.name" or \
                not _expression_matches(dict(field, key="n"), {"n": name}):
            return False
    return True


def node_affinity_matches(spec, labels, name):
    """``nodeSelector`` and ``requiredDuringSchedulingIgnoredDuringExecution`` of ``spec``
    against a node's ``labels`` and ``name`` (terms are ORed, expressions ANDed)."""
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is not None:
        return any(_term_matches(term, labels, name)
                   for term in required.get("nodeSelectorTerms") or ())
    return True


# -- nodes ---------------------------------------------------------------------------------


class NodeInfo:
    """One node's static properties and incremental aggregates of the pods on it."""

    __slots__ = ("name", "exists", "labels", "taints", "unschedulable", "alloc_cpu",
                 "alloc_mem", "alloc_pods", "alloc_scalar", "req_cpu", "req_mem",
                 "req_scalar", "nz_cpu", "nz_mem", "pods", "ports", "static_sig", "alloc_sig")

    def __init__(self, name):
        """An empty, not (yet) existing node."""
        self.name = name
        self.exists = False
        self.labels = {}
        self.taints = ()
        self.unschedulable = False
        self.alloc_cpu = self.alloc_mem = self.alloc_pods = 0
        self.alloc_scalar = {}
        self.req_cpu = self.req_mem = self.nz_cpu = self.nz_mem = 0
        self.req_scalar = collections.Counter()
        self.pods = set()
        self.ports = {}   # (protocol, port) -> Counter of host IPs
        self.static_sig = None
        self.alloc_sig = None

    def set_node(self, node):
        """Take the properties of a Node object; returns ``(static changed, allocatable
        changed)``."""
        spec, status = node.get("spec") or {}, node.get("status") or {}
        self.exists = True
        self.labels = meta(node).get("labels") or {}
        taints = [(t.get("key") or "", t.get("value") or "", t.get("effect"))
                  for t in spec.get("taints") or () if t.get("effect") in _FILTER_EFFECTS]
        ready = get_condition(status, "Ready")
        ready_status = ready.get("status") if ready else None
        if ready_status != "True":
            implied = TAINT_UNREACHABLE if ready_status == "Unknown" else TAINT_NOT_READY
            if not any(key == implied and effect == "NoSchedule" for key, _, effect in taints):
                taints.append((implied, "", "NoSchedule"))
        self.taints = tuple(taints)
        self.unschedulable = bool(spec.get("unschedulable"))
        allocatable = status.get("allocatable") or status.get("capacity") or {}
        self.alloc_cpu = _amount("cpu", allocatable.get("cpu", 0))
        self.alloc_mem = _amount("memory", allocatable.get("memory", 0))
        self.alloc_pods = _amount("pods", allocatable.get("pods", 0))
        self.alloc_scalar = {name: _amount(name, value) for name, value in allocatable.items()
                             if name not in ("cpu", "memory", "pods")}
        static_sig = (tuple(sorted(self.labels.items())), self.taints, self.unschedulable)
        alloc_sig = tuple(sorted(allocatable.items()))
        changed = (static_sig != self.static_sig, alloc_sig != self.alloc_sig)
        self.static_sig, self.alloc_sig = static_sig, alloc_sig
        return changed

    def add_pod(self, key, info):
        """Count a pod's requests and ports."""
        self.pods.add(key)
        self.req_cpu += info.cpu
        self.req_mem += info.mem
        self.nz_cpu += info.nz_cpu
        self.nz_mem += info.nz_mem
        if info.scalar:
            self.req_scalar.update(info.scalar)
        for protocol, ip, port in info.ports:
            self.ports.setdefault((protocol, port), collections.Counter())[ip] += 1

    def remove_pod(self, key, info):
        """Stop counting a pod."""
        self.pods.discard(key)
        self.req_cpu -= info.cpu
        self.req_mem -= info.mem
        self.nz_cpu -= info.nz_cpu
        self.nz_mem -= info.nz_mem
        if info.scalar:
            self.req_scalar.subtract(info.scalar)
        for protocol, ip, port in info.ports:
            used = self.ports.get((protocol, port))
            if used is not None:
                used[ip] -= 1
                if used[ip] <= 0:
                    del used[ip]
                if not used:
                    del self.ports[(protocol, port)]

    def port_conflict(self, ports):
        """Whether any wanted ``(protocol, ip, port)`` clashes with one in use (``0.0.0.0``
        clashes with every IP)."""
        for protocol, ip, port in ports:
            used = self.ports.get((protocol, port))
            if used and (ip == "0.0.0.0" or "0.0.0.0" in used or ip in used):
                return True
        return False

    def fit_failures(self, info):
        """``NodeResourcesFit``'s reasons (empty when the pod fits)."""
        reasons = []
        if len(self.pods) + 1 > self.alloc_pods:
            reasons.append(REASON_TOO_MANY_PODS)
        if info.cpu or info.mem or info.scalar:
            if info.cpu > self.alloc_cpu - self.req_cpu:
                reasons.append("Insufficient cpu")
            if info.mem > self.alloc_mem - self.req_mem:
                reasons.append("Insufficient memory")
            for name, amount in info.scalar.items():
                if amount > self.alloc_scalar.get(name, 0) - self.req_scalar.get(name, 0):
                    reasons.append("Insufficient " + name)
        return reasons

    def score(self, info):
        """``LeastAllocated`` on cpu and memory, 0-100 (higher: less requested)."""
        total = 0.0
        for allocatable, requested in ((self.alloc_cpu, self.nz_cpu + info.nz_cpu),
                                       (self.alloc_mem, self.nz_mem + info.nz_mem)):
            if allocatable > 0 and requested <= allocatable:
                total += (allocatable - requested) * 100.0 / allocatable
        return total / 2


def _static_failure(node, spec, tolerations):
    """The first static filter ``node`` fails for a pod, or ``None``."""
    if node.unschedulable and not tolerates(tolerations, TAINT_UNSCHEDULABLE, "",
                                            "NoSchedule"):
        return REASON_UNSCHEDULABLE
    for key, value, effect in node.taints:
        if not tolerates(tolerations, key, value, effect):
            return REASON_TAINT.format(key, value)
    if not node_affinity_matches(spec, node.labels, node.name):
        return REASON_AFFINITY
    return None


def num_feasible_nodes_to_find(total, percentage=None):
    """``numFeasibleNodesToFind``: how many feasible nodes to look for among ``total``."""
    if total < 100:
        return total
    if percentage is None:
        percentage = max(5, 50 - total // 125)
    found = total * percentage // 100
    return max(found, 100)


def failure_message(total, reasons):
    """kube-scheduler's ``FitError`` text for ``total`` nodes and a reason Counter."""
    if total == 0:
        return NO_NODES
    parts = sorted("{} {}".format(count, reason) for reason, count in reasons.items())
    return "0/{} nodes are available: {}.".format(total, ", ".join(parts))


# -- the scheduler ---------------------------------------------------------------------------


class Scheduler(Controller):
    """Binds pending pods to nodes; see the module docstring."""

    name = "scheduler"
    informed = (("pods", "pods", {}), ("nodes", "nodes", {}))
    concurrency = 16

    def __init__(self, clock, kube, recorder=None, scheduler_name=DEFAULT_SCHEDULER_NAME,
                 concurrency=None, percentage_of_nodes_to_score=None, initial_backoff=1.0,
                 max_backoff=10.0, unschedulable_timeout=60.0):
        """``concurrency`` bounds binds (and status writes) in flight."""
        super().__init__(clock, kube, recorder, concurrency)
        self.scheduler_name = scheduler_name
        self.percentage = percentage_of_nodes_to_score
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.unschedulable_timeout = unschedulable_timeout
        self.node_infos = {}
        self._node_list = None          # existing NodeInfos sorted by name (None: rebuild)
        self._accounted = {}            # pod key -> (node name, PodInfo), assumed or bound
        self._unschedulable = {}        # pod key -> time of the failed attempt
        self._attempts = collections.Counter()
        self._static_cache = {}
        self._next_start = 0
        self._flush = None
        self.bound = 0                  # binds that succeeded (metrics, the benchmark)

    # -- wiring ---------------------------------------------------------------------------

    def register_handlers(self):
        """Pods and nodes feed the caches and the queue."""
        self.nodes.add_handler(self.on_add_nodes, lambda old, new: self.on_add_nodes(new),
                               self.on_delete_nodes)
        self.pods.add_handler(self.on_add_pods, self.on_update_pods, self.on_delete_pods)

    def replay(self, attribute, objects):
        """Nodes first, so that pods find their nodes' infos."""
        handler = self.on_add_nodes if attribute == "nodes" else self.on_add_pods
        for obj in objects:
            handler(obj)

    def started(self):
        """Retry long-unschedulable pods every ``unschedulable_timeout / 2`` seconds."""
        self._flush = task.LoopingCall(self._flush_unschedulable)
        self._flush.clock = self.clock
        self._flush.start(max(self.unschedulable_timeout / 2, 1), now=False)

    def stopped(self):
        """Stop the periodic retry."""
        if self._flush is not None and self._flush.running:
            self._flush.stop()
        self._flush = None

    # -- node events ------------------------------------------------------------------------

    def _info(self, name):
        info = self.node_infos.get(name)
        if info is None:
            info = self.node_infos[name] = NodeInfo(name)
        return info

    def on_add_nodes(self, node):
        """A node appeared or changed: update its info; retry unschedulable pods when
        something that matters to scheduling changed."""
        info = self._info(meta(node).get("name"))
        existed = info.exists
        static_changed, alloc_changed = info.set_node(node)
        if not existed:
            self._node_list = None
        if static_changed or not existed:
            self._static_cache.clear()
        if static_changed or alloc_changed or not existed:
            self._retry_unschedulable()

    def on_delete_nodes(self, node):
        """A node went away: no more pods go there (those bound to it stay counted)."""
        name = meta(node).get("name")
        info = self.node_infos.get(name)
        if info is None:
            return
        info.exists = False
        info.static_sig = info.alloc_sig = None
        if not info.pods:
            del self.node_infos[name]
        self._node_list = None
        self._static_cache.clear()

    def _nodes(self):
        if self._node_list is None:
            self._node_list = [self.node_infos[n] for n in sorted(self.node_infos)
                               if self.node_infos[n].exists]
        return self._node_list

    # -- pod events ---------------------------------------------------------------------------

    def _responsible(self, pod):
        spec = pod.get("spec") or {}
        return (spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME) == self.scheduler_name \
            and not meta(pod).get("deletionTimestamp") \
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")

    def on_add_pods(self, pod):
        """A pod appeared."""
        self.on_update_pods(None, pod)

    def on_update_pods(self, old, pod):
        """Account bound pods on their node; queue pending ones."""
        key = object_key(pod)
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            self._unschedulable.pop(key, None)
            self._attempts.pop(key, None)
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                if self._unaccount(key):
                    self._retry_unschedulable()
            else:
                self._account(key, node, pod)
            return
        if not self._responsible(pod):
            self._unschedulable.pop(key, None)
            return
        if key in self._unschedulable:
            if old is not None and old.get("spec") == pod.get("spec") and \
                    meta(old).get("labels") == meta(pod).get("labels"):
                return  # e.g. our own status write: wait for a cluster change
            del self._unschedulable[key]
        if key in self._accounted:
            return  # assumed: the bind is in flight
        self.queue.add(key)

    def on_delete_pods(self, pod):
        """A pod went away: forget it; its resources are free for others."""
        key = object_key(pod)
        self._unschedulable.pop(key, None)
        self._attempts.pop(key, None)
        if self._unaccount(key):
            self._retry_unschedulable()

    def _account(self, key, node_name, pod, info=None):
        current = self._accounted.get(key)
        if current is not None:
            if current[0] == node_name:
                return
            self._unaccount(key)
        info = info or pod_info(pod)
        self._info(node_name).add_pod(key, info)
        self._accounted[key] = (node_name, info)

    def _unaccount(self, key):
        current = self._accounted.pop(key, None)
        if current is None:
            return False
        node_name, info = current
        node = self.node_infos.get(node_name)
        if node is not None:
            node.remove_pod(key, info)
            if not node.exists and not node.pods:
                del self.node_infos[node_name]
        return True

    # -- retries --------------------------------------------------------------------------------

    def _backoff(self, key):
        attempts = max(self._attempts.get(key, 1), 1)
        return min(self.initial_backoff * 2 ** (attempts - 1), self.max_backoff)

    def _retry_unschedulable(self):
        """Move every unschedulable pod back to the queue, each after its backoff
        (``MoveAllToActiveOrBackoffQueue``)."""
        if not self._unschedulable:
            return
        now = self.clock.seconds()
        pool, self._unschedulable = self._unschedulable, {}
        for key, since in pool.items():
            self.queue.add_after(key, since + self._backoff(key) - now)

    def _flush_unschedulable(self):
        now = self.clock.seconds()
        for key, since in list(self._unschedulable.items()):
            if now - since >= self.unschedulable_timeout:
                del self._unschedulable[key]
                self.queue.add(key)

    @property
    def unschedulable(self):
        """Keys of the pods waiting in the unschedulable pool."""
        return set(self._unschedulable)

    # -- scheduling one pod ------------------------------------------------------------------------

    def sync(self, key):
        """Schedule one pod: pick a node, assume it, bind (or report it unschedulable)."""
        pod = self.pods.get_by_key(key)
        if pod is None or (pod.get("spec") or {}).get("nodeName") or \
                not self._responsible(pod) or key in self._accounted:
            return None
        info = pod_info(pod)
        node, message = self.find_node(pod, info)
        if node is None:
            return self._failed(key, pod, message)
        self._account(key, node.name, pod, info)
        return self._bind(key, pod, node.name)

    def find_node(self, pod, info=None):
        """``(NodeInfo, None)`` for the best node, or ``(None, message)``."""
        info = info or pod_info(pod)
        nodes = self._nodes()
        if not nodes:
            return None, NO_NODES
        candidates, reasons = self._static(pod, nodes)
        wanted = num_feasible_nodes_to_find(len(nodes), self.percentage)
        count = len(candidates)
        start = self._next_start % count if count else 0
        best, best_score, found, checked = None, -1.0, 0, 0
        dynamic = collections.Counter()
        for i in range(count):
            node = candidates[(start + i) % count]
            checked += 1
            if info.ports and node.ports and node.port_conflict(info.ports):
                dynamic[REASON_PORTS] += 1
                continue
            failures = node.fit_failures(info)
            if failures:
                dynamic.update(failures)
                continue
            score = node.score(info)
            if score > best_score or (score == best_score and node.name < best.name):
                best, best_score = node, score
            found += 1
            if found >= wanted:
                break
        if count:
            self._next_start = (start + checked) % count
        if best is not None:
            return best, None
        return None, failure_message(len(nodes), reasons + dynamic)

    def _static(self, pod, nodes):
        """The nodes passing the static filters for ``pod`` and the others' reasons,
        cached per (nodeSelector, required affinity, tolerations) signature."""
        spec = pod.get("spec") or {}
        affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution")
        tolerations = spec.get("tolerations") or ()
        signature = json.dumps([spec.get("nodeSelector"), affinity, tolerations],
                               sort_keys=True)
        cached = self._static_cache.get(signature)
        if cached is None:
            feasible, reasons = [], collections.Counter()
            for node in nodes:
                failure = _static_failure(node, spec, tolerations)
                if failure is None:
                    feasible.append(node)
                else:
                    reasons[failure] += 1
            if len(self._static_cache) > 1024:
                self._static_cache.clear()
            cached = self._static_cache[signature] = (feasible, reasons)
        return cached

    async def _bind(self, key, pod, node_name):
        namespace, name = split_key(key)
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": name, "namespace": namespace,
                                "uid": meta(pod).get("uid")},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
        try:
            await self.client.create("pods", binding, namespace=namespace,
                                     subresource="binding")
        except (Conflict, NotFound) as e:
            # Bound by someone else, or gone: the informer will show which.
            self._forget_assumed(key, node_name)
            self.log.info("binding {pod} to {node}: {error}", pod=key, node=node_name,
                          error=e, log_event="scheduler_bind_refused")
            return
        except BaseException:
            self._forget_assumed(key, node_name)
            raise
        self.bound += 1
        self.event(pod, NORMAL, "Scheduled", "Successfully assigned {}/{} to {}".format(
            namespace, name, node_name))

    def _forget_assumed(self, key, node_name):
        pod = self.pods.get_by_key(key)
        if pod is not None and (pod.get("spec") or {}).get("nodeName"):
            return  # the informer already shows where it is bound
        current = self._accounted.get(key)
        if current is not None and current[0] == node_name:
            self._unaccount(key)

    def _failed(self, key, pod, message):
        self._attempts[key] += 1
        self._unschedulable[key] = self.clock.seconds()
        self.event(pod, WARNING, "FailedScheduling", message)
        condition = get_condition(pod.get("status"), "PodScheduled")
        if condition is not None and condition.get("status") == "False" and \
                condition.get("reason") == "Unschedulable" and \
                condition.get("message") == message:
            return None
        return self._write_unschedulable(key, condition, message)

    async def _write_unschedulable(self, key, previous, message):
        namespace, name = split_key(key)
        now = format_time(self.clock.seconds())
        since = previous.get("lastTransitionTime") if previous is not None and \
            previous.get("status") == "False" else None
        patch = {"status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastProbeTime": None, "lastTransitionTime": since or now}]}}
        try:
            await self.client.patch_status("pods", name, patch, namespace=namespace,
                                           patch_type="strategic")
        except NotFound:
            pass
        except K8sError as e:
            self.log.warn("marking {pod} unschedulable: {error}", pod=key, error=e,
                          log_event="scheduler_status_failed")
