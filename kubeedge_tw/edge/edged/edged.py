"""Edged (edge module ``edged``, group ``edged``): runs the node's pods as Docker containers
and reports pod and node status — a small kubelet, as KubeEdge's edged (reference 5).

What it does, with the KubeEdge/kubelet behaviour each part reproduces:

* **Pods from MetaManager** (reference 3.1, 2.9): ``insert``/``update`` on
  ``<ns>/pod/<name>`` add or change a pod (an update with ``metadata.deletionTimestamp``
  is a graceful delete), ``delete`` removes it now. At start edged asks MetaManager for
  every stored pod (``query`` ``default/pod``), so pods come back from sqlite with no
  cloud: offline autonomy.
* **Adoption**: containers carry labels (pod uid/name/namespace, container name, restart
  count, spec hash, node), so after an edge restart the running containers are found and
  kept; only what is missing is created. Containers of pods edged no longer has are
  stopped and removed once the stored pods are known.
* **Per-pod sync** (kubelet's ``syncPod``): one at a time per pod, triggered by messages,
  by the relist of containers every ``relist_period`` seconds (kubelet's PLEG), by probes,
  back-off timers and a periodic resync. It sets up volumes, pulls images by
  ``imagePullPolicy``, creates and starts what is missing, recreates containers whose spec
  changed, restarts dead ones by ``restartPolicy`` with back-off (10 s doubling to 300 s,
  ``CrashLoopBackOff``) and stops containers gracefully (SIGTERM, the grace period on the
  clock, SIGKILL). Creating and starting a container takes turns (``concurrent_starts``
  at once, in the order the syncs ask): a burst of new pods comes up one after another,
  each reported the moment Docker runs it, rather than all of them late together.
* **Status** (reference 5, Pod status): ``update`` on ``<ns>/podstatus/<name>`` with
  ``{"UID", "Name", "Status"}`` whenever it changes, every pod again every
  ``status_period`` seconds and right after the cloud reconnects.
* **Node**: registration by a sync ``insert`` on ``default/node/<node>`` (retried with
  back-off until answered), then ``update`` on ``default/nodestatus/<node>`` every
  ``nodeStatusUpdateFrequency`` seconds; NotReady with a reason while Docker does not answer.
* **Read-only HTTP** on 127.0.0.1:``readOnlyPort``: ``/pods`` and ``/healthz``.
* **GC** of dead containers (the newest per container is kept) and of unused images above
  ``imageGCHighThreshold``.

A bad pod spec, a failing pull or a Docker outage become pod or node status, never an
exception out of edged. Stopping edged stops its timers and thread pool; containers keep
running (the edge's autonomy across its own restarts).
"""

import functools
import json

from twisted.internet import defer, task
from twisted.logger import Logger

from kubeedge_tw.common import names
from kubeedge_tw.common.bus import BusStopped, SyncTimeout, UnknownModule
from kubeedge_tw.common.message import new_message
from kubeedge_tw.common.module import Module, QueueFull
from kubeedge_tw.common.resource import ResourceError, parse_edge_resource
from kubeedge_tw.edge.edged import gc
from kubeedge_tw.edge.edged.backoff import Backoff
from kubeedge_tw.edge.edged.configs import (
    ConfigError, ObjectCache, QueryFailed, expand, objects_from_reply, resolve_env)
from kubeedge_tw.edge.edged.node import _thd_node_facts, node_object, node_status
from kubeedge_tw.edge.edged.pool import PoolStopped
from kubeedge_tw.edge.edged.probes import LIVENESS, READINESS, ProbeWorker
from kubeedge_tw.edge.edged.runtime import (
    CREATED, DEAD, EXITED, LABEL_CONTAINER_HASH, LABEL_CONTAINER_NAME, LABEL_GRACE_PERIOD,
    LABEL_MANAGED_BY, LABEL_NODE, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
    LABEL_RESTART_COUNT, MANAGED_BY, RUNNING, ContainerConfig, ContainerCreateError,
    ContainerNotFound, ContainerStartError, ImageNotFound, ImagePullError, NameConflict,
    RuntimeFailure, container_name, rfc3339)
from kubeedge_tw.edge.edged.server import make_site
from kubeedge_tw.edge.edged.spec import CONFIG_ERROR, NEVER, ON_FAILURE, PodIdentityError, \
    parse_image_reference, parse_pod
from kubeedge_tw.edge.edged.status import (
    CONTAINER_CREATING, CRASH_LOOP_BACK_OFF, build_pod_status, container_status)
from kubeedge_tw.edge.edged.volumes import WRITTEN_KINDS, VolumeError, VolumeManager

__all__ = ["Edged", "PodRecord"]

#: Waiting reasons of kubelet's image manager and container start.
ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
CREATE_CONTAINER_ERROR = "CreateContainerError"

#: Seconds between checks of a container being stopped, and how long SIGKILL may take.
STOP_POLL = 1.0
KILL_WAIT = 10.0
#: Seconds before a pod whose setup failed (missing ConfigMap, create error) is tried again.
RETRY_DELAY = 10.0
#: How soon after ErrImagePull the status turns to ImagePullBackOff.
PULL_STATUS_REFRESH = 1.0
#: Container creations and starts in flight at once (see ``Edged.concurrent_starts``):
#: fewer than the ``docker`` pool's threads, so that listing and inspecting (which status
#: reports wait for) always find a free thread. On a two-core edge, three starts at once
#: keep the engine about as busy as more would, and each start is quicker.
CONCURRENT_STARTS = 3


class _Stopped(Exception):
    """Edged stopped while a task waited."""


class PodRecord:
    """What edged knows about one pod."""

    def __init__(self, pod, spec, start_time):
        self.pod = pod
        self.spec = spec
        self.uid = spec.uid
        self.key = (spec.namespace, spec.name)
        self.start_time = start_time
        #: Graceful delete asked (``deletionTimestamp``) / removal asked (``delete``).
        self.terminating = False
        self.deleted = False
        self.grace = spec.grace_period
        #: container name -> its runs, newest first; ids seen dead -> when (clock).
        self.runs = {}
        self.died_at = {}
        #: container name -> (reason, message) while it has no running container.
        self.waiting = {}
        #: (container name, kind) -> ProbeWorker; container name -> container id to kill.
        self.probes = {}
        self.kill_requested = {}
        self.volume_paths = {}
        self.message = ""
        self.status = None
        self.sent = None
        self.snapshot = None
        self.syncing = False
        self.sync_d = None
        self.sync_again = False
        self.retry_call = None
        #: A pod added again while this record was being removed.
        self.pending_pod = None
        self.forgotten = False

    @property
    def namespace(self):
        """The pod's namespace."""
        return self.spec.namespace

    @property
    def name(self):
        """The pod's name."""
        return self.spec.name

    def describe(self):
        """``namespace/name``, for logs."""
        return "{}/{}".format(self.spec.namespace, self.spec.name)

    def latest(self, name):
        """The newest run of container ``name``, or None."""
        runs = self.runs.get(name)
        return runs[0] if runs else None


def _normalise_image(reference):
    """``busybox`` -> ``busybox:latest``; drops ``docker.io/(library/)``, as Docker lists
    tags."""
    try:
        name, tag, digest = parse_image_reference(reference)
    except ValueError:
        return reference
    for prefix in ("docker.io/library/", "docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    if digest:
        return "{}@{}".format(name, digest)
    return "{}:{}".format(name, tag or "latest")


class Edged(Module):
    """See the module docstring."""

    log = Logger()
    name = names.EDGED
    group = names.EDGED_GROUP

    def __init__(self, clock, *, runtime, pool, node_name, volume_root, prober=None,
                 namespace="default", register_node=True, node_status_frequency=10,
                 node_ip="", interface_name="eth0", version="", query_timeout=15,
                 http_endpoint=None, facts=_thd_node_facts, memory_capacity=7852396000,
                 image_gc_high=80, image_gc_low=40, keep_dead=1, extra_labels=None,
                 relist_period=2.0, resync_period=60.0, status_period=60.0,
                 container_gc_period=60.0, image_gc_period=300.0, backoff_initial=10.0,
                 backoff_max=300.0, retry_delay=RETRY_DELAY, load_retry=(2.0, 60.0),
                 concurrent_starts=CONCURRENT_STARTS):
        super().__init__(clock)
        self.runtime = runtime
        self.pool = pool
        self.prober = prober
        self.node_name = node_name
        self.namespace = namespace
        self.register_node = register_node
        self.node_status_frequency = node_status_frequency
        self.configured_node_ip = node_ip
        self.interface_name = interface_name
        self.version = version
        self.query_timeout = query_timeout
        self.http_endpoint = http_endpoint
        self.facts = facts
        self.memory_capacity = memory_capacity
        self.image_gc_high = image_gc_high
        self.image_gc_low = image_gc_low
        self.keep_dead = keep_dead
        self.extra_labels = dict(extra_labels or {})
        self.relist_period = relist_period
        self.resync_period = resync_period
        self.status_period = status_period
        self.container_gc_period = container_gc_period
        self.image_gc_period = image_gc_period
        self.retry_delay = retry_delay
        self.load_retry = load_retry
        #: Creating and starting a container takes its turn here, in the order the syncs
        #: asked. The engine can only do so many starts at once anyway; taking turns
        #: brings a burst of pods up one after another, each reported Running as soon as
        #: Docker says it runs, instead of every pod crawling through each step together,
        #: queued behind the whole burst's calls on the ``docker`` pool, and all of them
        #: reported at the end.
        self.concurrent_starts = concurrent_starts
        self._start_turns = defer.DeferredSemaphore(concurrent_starts)
        self.backoff = Backoff(clock, backoff_initial, backoff_max)
        self.pull_backoff = Backoff(clock, backoff_initial, backoff_max)
        self.objects = ObjectCache(self._query_objects)
        self.volumes = VolumeManager(volume_root, pool, self.objects.get, node_name)
        #: (namespace, name) -> PodRecord; pod uid -> PodRecord.
        self.pods = {}
        self.by_uid = {}
        #: The stored pods were loaded (orphans may now be removed).
        self.loaded = False
        self.registered = False
        self.node_uid = ""
        self.node_ip = node_ip or "127.0.0.1"
        self.node_facts = None
        self.node_conditions = ()
        self.last_node_status = None
        #: "" while the runtime answers, else why it does not.
        self.runtime_error = ""
        self.runtime_version = None
        self.cloud_connected = False
        self._tasks = set()
        self._loops = []
        self._node_loop = None
        self._port = None
        self._register_wake = None
        self._cleaning = set()
        self._warned = set()

    # -- labels --------------------------------------------------------------------------------

    @property
    def base_labels(self):
        """Labels that mark the containers this edged manages."""
        return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_NODE: self.node_name}

    # -- service -------------------------------------------------------------------------------

    def startService(self):
        """Start the pool, the loops, the read-only API and the start-up (load pods, register)."""
        super().startService()
        self.pool.start()
        self.runtime.start()
        self._start_loop(self._relist, self.relist_period, now=True)
        self._start_loop(self._resync_all, self.resync_period)
        self._start_loop(self._resend_statuses, self.status_period)
        self._start_loop(self._container_gc, self.container_gc_period)
        self._start_loop(self._image_gc, self.image_gc_period)
        if self.http_endpoint is not None:
            d = self.http_endpoint.listen(make_site(self.pod_list, reactor=self.clock))
            d.addCallbacks(self._listening, self._listen_failed)
        self._spawn(self._startup(), "start-up")

    def _listening(self, port):
        self._port = port
        if not self.running:
            return port.stopListening()
        address = port.getHost()
        self.log.info("edged read-only API on http://{host}:{port}/pods",
                      host=address.host, port=address.port, log_event="edged_readonly_api")

    def _listen_failed(self, failure):
        self.log.warn("edged read-only API not started: {error}",
                      error=failure.getErrorMessage(), log_event="edged_readonly_listen_failed")

    @defer.inlineCallbacks
    def stopService(self):
        """Stop timers, probes and tasks and the thread pool; containers keep running."""
        yield super().stopService()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        if self._node_loop is not None and self._node_loop.running:
            self._node_loop.stop()
        self._node_loop = None
        self._wake_registration(cancel=True)
        for record in list(self.pods.values()):
            self._cancel_retry(record)
            for worker in record.probes.values():
                worker.stop()
            record.probes.clear()
        for d in list(self._tasks):
            d.cancel()
        if self._port is not None:
            port, self._port = self._port, None
            yield port.stopListening()
        self.pool.stop()
        yield self.runtime.stop()
        self.log.info("edged stopped; {count} pods keep running", count=len(self.pods),
                      log_event="edged_stopped")

    def _start_loop(self, function, period, now=False):
        if not period or period <= 0:
            return
        loop = task.LoopingCall(lambda: self._spawn(function(), function.__name__))
        loop.clock = self.clock
        loop.start(period, now=now).addErrback(
            lambda f: self.log.failure("edged loop {name} stopped", f, name=function.__name__))
        self._loops.append(loop)

    def _spawn(self, coroutine, what):
        """Run a coroutine as a tracked task: cancelled on stop, failures logged."""
        d = defer.Deferred.fromCoroutine(coroutine)
        if d.called:
            return d.addErrback(self._task_failed, what)
        self._tasks.add(d)

        def done(result):
            self._tasks.discard(d)
            return result
        d.addBoth(done)
        return d.addErrback(self._task_failed, what)

    def _task_failed(self, failure, what):
        if failure.check(defer.CancelledError, BusStopped, _Stopped, PoolStopped) \
                or not self.running:
            # Stopping interrupts work in flight; that is not an error.
            self.log.debug("edged task {what} ended by the stop", what=what)
            return None
        if failure.check(RuntimeFailure):
            self._runtime_trouble(failure.value, what)
            return None
        self.log.failure("edged task {what} failed", failure, what=what,
                         log_event="edged_task_failed")
        return None

    def _runtime_trouble(self, error, what):
        self.log.warn("edged: {what}: container runtime: {error}", what=what, error=error,
                      log_event="edged_runtime_error")

    def _sleep(self, seconds):
        return task.deferLater(self.clock, seconds, lambda: None)

    # -- start-up --------------------------------------------------------------------------

    async def _startup(self):
        await self._refresh_facts()
        self._spawn(self._load_pods(), "load pods")
        if self.register_node:
            self._spawn(self._register(), "register node")
        else:
            self._start_node_status()

    async def _refresh_facts(self):
        try:
            facts = await self.pool.run(self.facts, self.interface_name,
                                        self.configured_node_ip, self.memory_capacity)
        except Exception as e:  # reading /proc failing must not stop edged
            if not self.running:
                return None  # interrupted by the stop
            self.log.warn("edged cannot read node facts: {error}", error=e,
                          log_event="edged_node_facts_failed")
            return None
        self.node_facts = facts
        self.node_ip = facts.ip
        self.volumes.node_ip = facts.ip
        self.volumes.allocatable = {"cpu": str(facts.cpus),
                                    "memory": str(max(0, facts.memory_total - 100 * 2 ** 20))}
        return facts

    async def _load_pods(self):
        """Ask MetaManager for every stored pod (KubeEdge's start-up ``<ns>/pod`` query)
        until it answers; then adopt or create them."""
        delay, maximum = self.load_retry
        while self.running:
            query = new_message(names.EDGED, names.META_GROUP, names.OP_QUERY,
                                "{}/{}".format(self.namespace, names.RES_POD), None,
                                clock=self.clock)
            try:
                reply = await self.bus.send_sync(names.METAMANAGER, query, self.query_timeout)
                pods = objects_from_reply(reply)
                break
            except (SyncTimeout, QueryFailed, UnknownModule, QueueFull) as e:
                self.log.warn("edged cannot load the stored pods yet ({error}); again in "
                              "{delay}s", error=e, delay=delay, log_event="edged_load_retry")
                await self._sleep(delay)
                delay = min(delay * 2, maximum)
        else:
            return
        for pod in pods:
            self._upsert_pod(pod, from_load=True)
        self.loaded = True
        self.log.info("edged loaded {count} stored pods", count=len(pods),
                      log_event="edged_pods_loaded")

    # -- node ----------------------------------------------------------------------------------

    async def _node_status(self):
        facts = await self._refresh_facts()
        if facts is None:
            facts = self.node_facts
        if facts is None:
            return None
        try:
            version = await self.runtime.version()
            if self.runtime_error:
                self.log.info("edged: the container runtime answers again",
                              log_event="edged_runtime_back")
            self.runtime_error = ""
            self.runtime_version = version
        except RuntimeFailure as e:
            version = None
            if not self.runtime_error:
                self.log.warn("edged: the container runtime does not answer: {error}",
                              error=e, log_event="edged_runtime_unavailable")
            self.runtime_error = str(e) or type(e).__name__
        fs_usage = None
        if version is not None:
            try:
                fs_usage = await self.runtime.image_fs_usage()
            except RuntimeFailure:
                fs_usage = None
        status = node_status(facts, self.node_name, rfc3339(self.clock.seconds()),
                             runtime_version=version, runtime_error=self.runtime_error,
                             fs_usage=fs_usage, version=self.version,
                             previous_conditions=self.node_conditions)
        self.node_conditions = status["conditions"]
        self.last_node_status = status
        return status

    async def _register(self):
        """Register the Node (sync ``insert`` on ``<ns>/node/<node>``) until answered."""
        delay = 2.0
        while self.running and not self.registered:
            status = await self._node_status()
            if status is None:
                await self._wait_registration(delay)
                delay = min(delay * 2, 60.0)
                continue
            node = node_object(self.node_name, status, self.node_facts.arch)
            request = new_message(names.EDGED, names.META_GROUP, names.OP_INSERT,
                                  "{}/{}/{}".format(self.namespace, names.RES_NODE,
                                                    self.node_name), node, clock=self.clock)
            try:
                reply = await self.bus.send_sync(names.METAMANAGER, request,
                                                 self.query_timeout)
            except (SyncTimeout, UnknownModule, QueueFull) as e:
                reply, why = None, str(e)
            if reply is not None and reply.operation != names.OP_ERROR:
                self.registered = True
                self.node_uid = self._node_uid(reply.content_object())
                self.log.info("edged registered node {node}", node=self.node_name,
                              log_event="edged_node_registered")
                self._start_node_status()
                return
            if reply is not None:
                why = str(reply.content_object())
            self.log.info("edged: node {node} not registered yet ({why}); again in {delay}s",
                          node=self.node_name, why=why, delay=delay,
                          log_event="edged_register_retry")
            await self._wait_registration(delay)
            delay = min(delay * 2, 60.0)

    @staticmethod
    def _node_uid(content):
        obj = content
        if isinstance(obj, dict) and "Object" in obj and set(obj) <= {"Object", "Err"}:
            obj = obj.get("Object")
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except ValueError:
                return ""
        if isinstance(obj, dict) and obj.get("kind") != "Status":
            uid = (obj.get("metadata") or {}).get("uid")
            return uid if isinstance(uid, str) else ""
        return ""

    def _wait_registration(self, delay):
        d = defer.Deferred()
        call = self.clock.callLater(delay, d.callback, None)
        self._register_wake = (d, call)
        return d

    def _wake_registration(self, cancel=False):
        if self._register_wake is None:
            return
        d, call = self._register_wake
        self._register_wake = None
        if call.active():
            call.cancel()
        if not d.called:
            if cancel:
                d.cancel()
            else:
                d.callback(None)

    def _start_node_status(self):
        if self._node_loop is not None or not self.running:
            return
        self._node_loop = task.LoopingCall(
            lambda: self._spawn(self._report_node_status(), "node status"))
        self._node_loop.clock = self.clock
        self._node_loop.start(self.node_status_frequency, now=True).addErrback(
            lambda f: self.log.failure("edged node status loop stopped", f))

    async def _report_node_status(self):
        status = await self._node_status()
        if status is None:
            return
        content = {"UID": self.node_uid, "Status": status, "ExtendResources": None}
        self._send_up(new_message(
            names.EDGED, names.META_GROUP, names.OP_UPDATE,
            "{}/{}/{}".format(self.namespace, names.RES_NODESTATUS, self.node_name),
            content, clock=self.clock))

    def _send_up(self, message):
        """Send to MetaManager; True when it took the message."""
        try:
            self.bus.send(names.METAMANAGER, message)
            return True
        except UnknownModule:
            if "no-metamanager" not in self._warned:
                self._warned.add("no-metamanager")
                self.log.warn("edged: no metaManager module; status is not reported",
                              log_event="edged_no_metamanager")
        except QueueFull:
            self.log.warn("edged: metaManager is busy; {what} is sent again later",
                          what=message.describe(), log_event="edged_status_deferred")
        return False

    # -- messages ------------------------------------------------------------------------------

    def handle(self, message):
        """Pods, ConfigMaps and Secrets from MetaManager; the hub's connection news."""
        if message.operation == names.OP_PUBLISH and \
                message.resource == names.RES_NODE_CONNECTION:
            self._connection_changed(message.content_object())
            return
        try:
            parts = parse_edge_resource(message.resource)
        except ResourceError as e:
            self.log.warn("edged ignores {what}: {error}", what=message.describe(), error=e,
                          log_event="edged_bad_message")
            return
        content = message.content_object()
        if parts.type == names.RES_POD:
            if message.operation in (names.OP_INSERT, names.OP_UPDATE):
                self._upsert_pod(content)
            elif message.operation == names.OP_DELETE:
                self._delete_pod(parts.namespace, parts.name, content)
            else:
                self.log.debug("edged ignores {what}", what=message.describe())
        elif parts.type in (names.RES_CONFIGMAP, names.RES_SECRET):
            self._object_changed(message.operation, message.resource, parts, content)
        else:
            self.log.debug("edged ignores {what}", what=message.describe())

    def _connection_changed(self, content):
        connected = content == names.CLOUD_CONNECTED
        self.cloud_connected = connected
        if connected:
            # What changed while the cloud was away goes up at once (KubeEdge resends on
            # reconnect through its status manager's periodic sync).
            self._wake_registration()
            for record in self.pods.values():
                if record.status and "phase" in record.status:
                    self._send_status(record, force=True)

    def _upsert_pod(self, pod, from_load=False):
        try:
            spec = parse_pod(pod)
        except PodIdentityError as e:
            self.log.warn("edged ignores a pod it cannot name: {error}", error=e,
                          log_event="edged_bad_pod")
            return
        key = (spec.namespace, spec.name)
        record = self.pods.get(key)
        if from_load and record is not None:
            return  # a message newer than the stored copy came first
        if record is not None and record.deleted:
            record.pending_pod = pod
            return
        if record is not None and record.uid != spec.uid:
            # A new pod under the same name: the old one's containers are removed.
            old = record
            old.deleted = True
            old.pending_pod = pod
            self._request_sync(old)
            return
        if record is None:
            # A pod edged ran before (its stored copy carries the status reported then)
            # keeps its start time and condition transition times across edge restarts.
            known = pod.get("status") if isinstance(pod.get("status"), dict) else {}
            start_time = known.get("startTime")
            record = PodRecord(pod, spec, start_time if isinstance(start_time, str)
                               and start_time else rfc3339(self.clock.seconds()))
            if isinstance(known.get("conditions"), list):
                record.status = {"conditions": known["conditions"]}
            self.pods[key] = record
            self.by_uid[spec.uid] = record
            self.log.info("edged {how} pod {pod} (uid {uid})", pod=record.describe(),
                          uid=spec.uid, how="adopts stored" if from_load else "adds",
                          log_event="edged_pod_added")
        else:
            record.pod = pod
            record.spec = spec
        if spec.error:
            self.log.warn("edged cannot run pod {pod}: {reason}: {message}",
                          pod=record.describe(), reason=spec.error[0], message=spec.error[1],
                          log_event="edged_bad_pod_spec")
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp") and not record.terminating:
            record.terminating = True
            grace = meta.get("deletionGracePeriodSeconds")
            if isinstance(grace, int) and not isinstance(grace, bool) and grace >= 0:
                record.grace = grace
            else:
                record.grace = spec.grace_period
            self.log.info("edged stops pod {pod} (grace {grace}s)", pod=record.describe(),
                          grace=record.grace, log_event="edged_pod_terminating")
        elif not record.terminating:
            record.grace = spec.grace_period
        self._request_sync(record)

    def _delete_pod(self, namespace, name, content):
        record = self.pods.get((namespace, name))
        if record is not None:
            record.deleted = True
            self.log.info("edged removes pod {pod}", pod=record.describe(),
                          log_event="edged_pod_deleted")
            self._request_sync(record)
            return
        labels = dict(self.base_labels)
        uid = ((content or {}).get("metadata") or {}).get("uid") \
            if isinstance(content, dict) else None
        if isinstance(uid, str) and uid:
            labels[LABEL_POD_UID] = uid
        else:
            labels.update({LABEL_POD_NAMESPACE: namespace, LABEL_POD_NAME: name})
        self._spawn(self._remove_containers(labels, 0), "remove pod {}/{}".format(
            namespace, name))

    def _object_changed(self, operation, resource, parts, content):
        if operation == names.OP_DELETE:
            # Like kubelet, volumes keep their last content; new containers will not
            # find the object.
            self.objects.remove(resource)
            return
        if operation not in (names.OP_INSERT, names.OP_UPDATE, names.OP_RESPONSE) \
                or not isinstance(content, dict):
            return
        self.objects.put(resource, content)
        for record in list(self.pods.values()):
            if self._uses(record, parts.type, parts.namespace, parts.name):
                self._request_sync(record)

    @staticmethod
    def _uses(record, rtype, namespace, name):
        if record.namespace != namespace:
            return False
        key = "configMap" if rtype == names.RES_CONFIGMAP else "secret"
        name_key = "name" if rtype == names.RES_CONFIGMAP else "secretName"
        for kind, source in record.spec.volumes.values():
            if kind == key and source.get(name_key) == name:
                return True
            if kind == "projected":
                for entry in source.get("sources") or ():
                    if (entry.get(key) or {}).get("name") == name:
                        return True
        ref_key = "configMapRef" if rtype == names.RES_CONFIGMAP else "secretRef"
        key_ref = "configMapKeyRef" if rtype == names.RES_CONFIGMAP else "secretKeyRef"
        for container in record.spec.containers:
            for source in container.raw.get("envFrom") or ():
                if isinstance(source, dict) and (source.get(ref_key) or {}).get("name") == name:
                    return True
            for env in container.raw.get("env") or ():
                ref = ((env.get("valueFrom") or {}).get(key_ref) or {}) \
                    if isinstance(env, dict) else {}
                if ref.get("name") == name:
                    return True
        return False

    async def _query_objects(self, resource):
        query = new_message(names.EDGED, names.META_GROUP, names.OP_QUERY, resource, None,
                            clock=self.clock)
        try:
            reply = await self.bus.send_sync(names.METAMANAGER, query, self.query_timeout)
        except (SyncTimeout, UnknownModule, QueueFull) as e:
            raise QueryFailed(str(e)) from None
        return objects_from_reply(reply)

    # -- pod sync ------------------------------------------------------------------------------

    def _request_sync(self, record):
        if not self.running or record.forgotten:
            return
        if record.syncing:
            record.sync_again = True
            return
        self._cancel_retry(record)
        record.syncing = True
        record.sync_again = False
        d = defer.Deferred.fromCoroutine(self._sync_pod(record))
        if not d.called:
            record.sync_d = d
            self._tasks.add(d)
        d.addErrback(self._sync_failed, record)
        d.addBoth(self._sync_done, record, d)

    def _sync_failed(self, failure, record):
        if failure.check(defer.CancelledError, BusStopped, _Stopped):
            return None
        if failure.check(RuntimeFailure):
            self._runtime_trouble(failure.value, "pod " + record.describe())
        else:
            self.log.failure("edged failed to sync pod {pod}", failure, pod=record.describe(),
                             log_event="edged_sync_failed")
        self._schedule_sync(record, self.retry_delay)
        return None

    def _sync_done(self, _, record, d):
        self._tasks.discard(d)
        record.syncing = False
        record.sync_d = None
        if record.sync_again and self.running and not record.forgotten:
            self._schedule_sync(record, 0)

    def _schedule_sync(self, record, delay):
        """Sync ``record`` in ``delay`` seconds (an earlier scheduled sync wins)."""
        if not self.running or record.forgotten:
            return
        when = self.clock.seconds() + delay
        call = record.retry_call
        if call is not None and call.active():
            if call.getTime() <= when:
                return
            call.cancel()
        record.retry_call = self.clock.callLater(delay, self._retry_due, record)

    def _retry_due(self, record):
        record.retry_call = None
        self._request_sync(record)

    @staticmethod
    def _cancel_retry(record):
        if record.retry_call is not None and record.retry_call.active():
            record.retry_call.cancel()
        record.retry_call = None

    async def _refresh_runs(self, record):
        infos = await self.runtime.list_containers(
            dict(self.base_labels, **{LABEL_POD_UID: record.uid}))
        self._note_runs(record, infos)
        return infos

    def _note_runs(self, record, infos):
        runs = {}
        for info in infos:
            runs.setdefault(info.label(LABEL_CONTAINER_NAME), []).append(info)
        record.runs = {name: gc.sort_runs(group) for name, group in runs.items()}
        now = self.clock.seconds()
        ids = {info.id for info in infos}
        for info in infos:
            if info.dead:
                record.died_at.setdefault(info.id, now)
        record.died_at = {cid: t for cid, t in record.died_at.items() if cid in ids}
        record.snapshot = {info.id: (info.state, info.exit_code) for info in infos}
        for key, worker in list(record.probes.items()):
            latest = record.latest(key[0])
            if latest is None or latest.id != worker.container_id or not latest.running:
                worker.stop()
                del record.probes[key]

    async def _sync_pod(self, record):
        await self._refresh_runs(record)
        if record.deleted or record.terminating:
            await self._terminate(record)
            if record.deleted:
                await self._remove_pod(record)
                return
            await self._refresh_runs(record)
            self._update_status(record)
            return
        spec = record.spec
        if spec.error:
            record.message = spec.error[1]
            for container in spec.containers:
                record.waiting[container.name] = spec.error
            self._update_status(record)
            return
        wanted = {c.name for c in spec.containers}
        for name, runs in list(record.runs.items()):
            if name not in wanted:
                for run in runs:
                    if run.running:
                        await self._stop(run, record.grace)
        try:
            record.volume_paths = await self.volumes.setup(record.pod, spec)
        except VolumeError as e:
            record.message = str(e)
            for container in spec.containers:
                latest = record.latest(container.name)
                if latest is None or not latest.running:
                    record.waiting[container.name] = (CONTAINER_CREATING, str(e))
            self.log.warn("edged: pod {pod}: {error}", pod=record.describe(), error=e,
                          log_event="edged_volume_failed")
            self._update_status(record)
            self._schedule_sync(record, self.retry_delay)
            return
        record.message = ""
        changed = False
        for container in spec.containers:
            if container.error:
                record.waiting[container.name] = container.error
                continue
            if await self._sync_container(record, container):
                changed = True
        if changed:
            await self._refresh_runs(record)
            for container in spec.containers:
                latest = record.latest(container.name)
                if latest is not None and latest.running and not container.error:
                    self._ensure_probes(record, container, latest)
            # What was just started may already have exited: look again at once.
            self._schedule_sync(record, 0)
        self._update_status(record)

    async def _sync_container(self, record, container):
        """Bring one container to its wanted state; True when a run was started."""
        latest = record.latest(container.name)
        if latest is not None and latest.running:
            if latest.label(LABEL_CONTAINER_HASH) != container.hash:
                self.log.info("edged recreates container {container} of pod {pod}: its spec "
                              "changed", container=container.name, pod=record.describe(),
                              log_event="edged_container_spec_changed")
                self._stop_probes(record, container.name)
                await self._stop(latest, record.grace)
                return await self._start_new(record, container, latest.restart_count + 1)
            if record.kill_requested.get(container.name) == latest.id:
                record.kill_requested.pop(container.name, None)
                self._stop_probes(record, container.name)
                await self._stop(latest, record.grace)
                try:
                    latest = await self.runtime.inspect_container(latest.id)
                except ContainerNotFound:
                    return await self._start_new(record, container, latest.restart_count + 1)
                record.died_at.setdefault(latest.id, self.clock.seconds())
                return await self._restart_dead(record, container, latest)
            record.waiting.pop(container.name, None)
            self._ensure_probes(record, container, latest)
            return False
        if latest is not None and latest.state == CREATED and not latest.error:
            # Created but never started (edged stopped in between): start it now.
            try:
                await self.runtime.start_container(latest.id)
            except ContainerStartError as e:
                self.log.warn("edged: container {container} of pod {pod} cannot start: "
                              "{error}", container=container.name, pod=record.describe(),
                              error=e, log_event="edged_container_start_failed")
                self._schedule_sync(record, 0)
            except ContainerNotFound:
                self._schedule_sync(record, 0)
            return True
        if latest is not None and latest.dead:
            return await self._restart_dead(record, container, latest)
        if latest is not None and latest.state not in (RUNNING, EXITED, DEAD, CREATED):
            return False  # paused, restarting, removing: leave it to the runtime
        return await self._start_new(record, container,
                                     latest.restart_count + 1 if latest else 0)

    async def _restart_dead(self, record, container, latest):
        policy = record.spec.restart_policy
        if policy == NEVER or (policy == ON_FAILURE and latest.exit_code == 0
                               and not latest.error):
            record.waiting.pop(container.name, None)
            return False
        key = (record.uid, container.name)
        died = record.died_at.setdefault(latest.id, self.clock.seconds())
        remaining = self.backoff.remaining_since(key, died)
        if remaining > 0:
            record.waiting[container.name] = (
                CRASH_LOOP_BACK_OFF, "back-off {}s restarting failed container={} pod={}_{}({})"
                .format(int(self.backoff.delay(key)), container.name, record.name,
                        record.namespace, record.uid))
            self._schedule_sync(record, remaining)
            return False
        self.backoff.next(key)
        self.log.info("edged restarts container {container} of pod {pod} (exit code {code}, "
                      "restart {count})", container=container.name, pod=record.describe(),
                      code=latest.exit_code, count=latest.restart_count + 1,
                      log_event="edged_container_restart")
        return await self._start_new(record, container, latest.restart_count + 1)

    async def _ensure_image(self, record, container):
        """Whether the image is here by ``imagePullPolicy``; sets the waiting reason and a
        retry when it is not."""
        present = await self.runtime.inspect_image(container.image)
        policy = container.pull_policy
        if policy == "Never":
            if present is not None:
                return True
            record.waiting[container.name] = (
                ERR_IMAGE_NEVER_PULL, 'Container image "{}" is not present with pull policy '
                'of Never'.format(container.image))
            self._schedule_sync(record, self.retry_delay)
            return False
        if policy == "IfNotPresent" and present is not None:
            return True
        key = (record.uid, container.name, container.image)
        remaining = self.pull_backoff.remaining_since_update(key)
        if remaining > 0:
            record.waiting[container.name] = (
                IMAGE_PULL_BACK_OFF, 'Back-off pulling image "{}"'.format(container.image))
            self._schedule_sync(record, remaining)
            return False
        try:
            await self.runtime.pull_image(container.image)
        except ImagePullError as e:
            delay = self.pull_backoff.next(key)
            record.waiting[container.name] = (ERR_IMAGE_PULL, str(e))
            self.log.warn("edged: pod {pod}: {error}", pod=record.describe(), error=e,
                          log_event="edged_image_pull_failed")
            self._schedule_sync(record, min(delay, PULL_STATUS_REFRESH))
            return False
        self.pull_backoff.reset(key)
        return True

    async def _lookup(self, namespace, rtype, name):
        return await self.objects.get(namespace, rtype, name)

    def _allocatable(self):
        facts = self.node_facts
        if facts is None:
            return {}
        return {"cpu": str(facts.cpus),
                "memory": str(max(0, facts.memory_total - 100 * 2 ** 20))}

    async def _start_new(self, record, container, restart_count):
        """Create and start run ``restart_count`` of a container; True when started (or
        created and failed to start, which the next sync handles)."""
        if not await self._ensure_image(record, container):
            return False
        try:
            env = await resolve_env(record.pod, container.raw, self._lookup, self.node_ip,
                                    self.node_name, self._allocatable())
        except (ConfigError, QueryFailed) as e:
            return self._cannot_run(record, container, CONFIG_ERROR, e,
                                    "edged: container {container} of pod {pod}: {error}",
                                    "edged_container_config_error")
        config = await self._container_config(record, container, restart_count, env)
        await self._start_turns.acquire()
        try:
            if not self.running:
                raise _Stopped()
            if record.deleted or record.terminating or record.forgotten:
                return False  # removed while it waited: the next sync stops it instead
            return await self._create_and_start(record, container, config)
        finally:
            self._start_turns.release()

    async def _create_and_start(self, record, container, config):
        """Create and start one container (in its turn); True when started or created."""
        try:
            try:
                cid = await self.runtime.create_container(config)
            except NameConflict:
                # A run of that number exists from before a crash of edged: replace it.
                await self.runtime.remove_container(config.name)
                cid = await self.runtime.create_container(config)
        except (ContainerCreateError, ImageNotFound, NameConflict) as e:
            return self._cannot_run(
                record, container, CREATE_CONTAINER_ERROR, e,
                "edged: cannot create container {container} of pod {pod}: {error}",
                "edged_container_create_failed")
        record.waiting.pop(container.name, None)
        try:
            await self.runtime.start_container(cid)
        except ContainerStartError as e:
            self.log.warn("edged: container {container} of pod {pod} cannot start: {error}",
                          container=container.name, pod=record.describe(), error=e,
                          log_event="edged_container_start_failed")
            record.died_at[cid] = self.clock.seconds()
            self._schedule_sync(record, 0)
            return True
        self.log.info("edged started container {container} of pod {pod} ({cid})",
                      container=container.name, pod=record.describe(), cid=cid[:12],
                      log_event="edged_container_started")
        return True

    def _cannot_run(self, record, container, reason, error, text, log_event):
        """A container cannot be created now: its waiting ``reason``, a warning, a retry;
        False (nothing started)."""
        record.waiting[container.name] = (reason, str(error))
        self.log.warn(text, container=container.name, pod=record.describe(), error=error,
                      log_event=log_event)
        self._schedule_sync(record, self.retry_delay)
        return False

    async def _container_config(self, record, container, restart_count, env):
        raw = container.raw
        mapping = dict(env)
        entrypoint = [expand(part, mapping) for part in raw["command"]] \
            if raw.get("command") else None
        command = [expand(part, mapping) for part in raw["args"]] if raw.get("args") else None
        binds = []
        for mount in container.mounts:
            kind, host = record.volume_paths[mount.volume]
            if mount.sub_path:
                host = "{}/{}".format(host.rstrip("/"), mount.sub_path)
                await self.volumes.prepare_sub_path(kind, host)
            binds.append((host, mount.path, mount.read_only or kind in WRITTEN_KINDS))
        labels = dict(self.extra_labels)
        labels.update(self.base_labels)
        labels.update({
            LABEL_POD_NAME: record.name, LABEL_POD_NAMESPACE: record.namespace,
            LABEL_POD_UID: record.uid, LABEL_CONTAINER_NAME: container.name,
            LABEL_RESTART_COUNT: str(restart_count), LABEL_CONTAINER_HASH: container.hash,
            LABEL_GRACE_PERIOD: str(record.spec.grace_period),
        })
        return ContainerConfig(
            name=container_name(record.namespace, record.name, record.uid, container.name,
                                restart_count),
            image=container.image, labels=labels, entrypoint=entrypoint, command=command,
            env=["{}={}".format(k, v) for k, v in env],
            working_dir=raw.get("workingDir") or "", binds=binds,
            mem_limit=container.mem_limit, nano_cpus=container.nano_cpus,
            cpu_shares=container.cpu_shares, tty=bool(raw.get("tty")),
            stdin=bool(raw.get("stdin")), privileged=container.privileged)

    async def _stop(self, info, grace):
        """SIGTERM, up to ``grace`` seconds on the clock, then SIGKILL (kubelet's
        ``killContainer``). Returns when the container no longer runs."""
        cid = info.id
        try:
            await self.runtime.kill_container(cid, "SIGTERM" if grace > 0 else "SIGKILL")
        except ContainerNotFound:
            return
        deadline = self.clock.seconds() + grace
        while grace > 0:
            try:
                current = await self.runtime.inspect_container(cid)
            except ContainerNotFound:
                return
            if not current.running:
                return
            left = deadline - self.clock.seconds()
            if left <= 0:
                break
            await self._sleep(min(STOP_POLL, left))
        try:
            await self.runtime.kill_container(cid, "SIGKILL")
        except ContainerNotFound:
            return
        waited = 0.0
        while waited < KILL_WAIT:
            try:
                current = await self.runtime.inspect_container(cid)
            except ContainerNotFound:
                return
            if not current.running:
                return
            await self._sleep(0.2)
            waited += 0.2

    async def _terminate(self, record):
        for key in list(record.probes):
            self._stop_probes(record, key[0])
        running = [run for runs in record.runs.values() for run in runs if run.running]
        if running:
            try:
                await defer.gatherResults(
                    [defer.Deferred.fromCoroutine(self._stop(run, record.grace))
                     for run in running], consumeErrors=True)
            except defer.FirstError as e:
                e.subFailure.raiseException()

    async def _remove_pod(self, record):
        for runs in record.runs.values():
            for run in runs:
                await self.runtime.remove_container(run.id)
        await self.volumes.teardown(record.uid)
        self._forget(record)
        self.log.info("edged removed pod {pod}", pod=record.describe(),
                      log_event="edged_pod_removed")
        if record.pending_pod is not None:
            self._upsert_pod(record.pending_pod)

    def _forget(self, record):
        record.forgotten = True
        self._cancel_retry(record)
        for worker in record.probes.values():
            worker.stop()
        record.probes.clear()
        if self.pods.get(record.key) is record:
            del self.pods[record.key]
        if self.by_uid.get(record.uid) is record:
            del self.by_uid[record.uid]
        self.backoff.forget_where(lambda key: key[0] == record.uid)
        self.pull_backoff.forget_where(lambda key: key[0] == record.uid)

    async def _remove_containers(self, labels, grace):
        infos = await self.runtime.list_containers(labels)
        for info in infos:
            if info.running:
                await self._stop(info, grace)
            await self.runtime.remove_container(info.id)
        uids = {info.label(LABEL_POD_UID) for info in infos}
        for uid in uids:
            if uid and uid not in self.by_uid:
                await self.volumes.teardown(uid)
        return len(infos)

    # -- probes --------------------------------------------------------------------------------

    def _ensure_probes(self, record, container, latest):
        if self.prober is None:
            return
        for kind, probe in ((LIVENESS, container.liveness), (READINESS, container.readiness)):
            if probe is None:
                continue
            worker = record.probes.get((container.name, kind))
            if worker is not None and worker.container_id == latest.id and not worker.stopped:
                continue
            if worker is not None:
                worker.stop()
            worker = ProbeWorker(self.clock, self.prober, probe, kind, latest.id,
                                 self.node_ip, container.ports,
                                 functools.partial(self._probe_changed, record,
                                                   container.name))
            record.probes[(container.name, kind)] = worker
            worker.start()

    def _stop_probes(self, record, name):
        for kind in (LIVENESS, READINESS):
            worker = record.probes.pop((name, kind), None)
            if worker is not None:
                worker.stop()

    def _probe_changed(self, record, name, worker, ok, message):
        if record.forgotten or self.by_uid.get(record.uid) is not record:
            return
        if worker.kind == LIVENESS and not ok:
            self.log.info("edged: liveness probe of container {container} of pod {pod} "
                          "failed ({message}); restarting it", container=name,
                          pod=record.describe(), message=message,
                          log_event="edged_liveness_failed")
            record.kill_requested[name] = worker.container_id
            worker.stop()
            self._request_sync(record)
        elif worker.kind == READINESS:
            self._update_status(record)

    def _ready(self, record, container):
        latest = record.latest(container.name)
        if latest is None or not latest.running:
            return False
        if container.readiness is None:
            return True
        worker = record.probes.get((container.name, READINESS))
        return bool(worker is not None and worker.container_id == latest.id and worker.result)

    # -- status --------------------------------------------------------------------------------

    def _update_status(self, record):
        if record.forgotten:
            return
        spec = record.spec
        statuses = [container_status(c.name, c.image or str(c.raw.get("image") or ""),
                                     record.runs.get(c.name, []), record.waiting.get(c.name),
                                     self._ready(record, c), self.runtime.name)
                    for c in spec.containers]
        policy = NEVER if record.terminating else spec.restart_policy
        record.status = build_pod_status(
            policy, statuses, [c.raw for c in spec.containers], self.node_ip,
            record.start_time, rfc3339(self.clock.seconds()), previous=record.status,
            message=record.message)
        self._send_status(record)

    def _send_status(self, record, force=False):
        text = json.dumps(record.status, sort_keys=True)
        if text == record.sent and not force:
            return
        content = {"UID": record.uid, "Name": record.name, "Status": record.status}
        message = new_message(names.EDGED, names.META_GROUP, names.OP_UPDATE,
                              "{}/{}/{}".format(record.namespace, names.RES_PODSTATUS,
                                                record.name), content, clock=self.clock)
        if self._send_up(message):
            record.sent = text

    def pod_list(self):
        """The v1.PodList of the pods edged runs, with their current status."""
        items = []
        for key in sorted(self.pods):
            record = self.pods[key]
            if record.deleted:
                continue
            pod = dict(record.pod)
            computed = record.status and "phase" in record.status
            pod["status"] = record.status if computed else \
                (record.pod.get("status") or {"phase": "Pending"})
            items.append(pod)
        return {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}

    # -- periodic ------------------------------------------------------------------------------

    async def _relist(self):
        """kubelet's PLEG relist: find container changes and orphans."""
        try:
            infos = await self.runtime.list_containers(self.base_labels)
        except RuntimeFailure as e:
            if not self.runtime_error:
                self.log.warn("edged: the container runtime does not answer: {error}",
                              error=e, log_event="edged_runtime_unavailable")
            self.runtime_error = str(e) or type(e).__name__
            return
        if self.runtime_error:
            self.log.info("edged: the container runtime answers again",
                          log_event="edged_runtime_back")
            self.runtime_error = ""
        groups = {}
        for info in infos:
            groups.setdefault(info.label(LABEL_POD_UID), []).append(info)
        for uid, runs in groups.items():
            record = self.by_uid.get(uid)
            if record is not None:
                snapshot = {run.id: (run.state, run.exit_code) for run in runs}
                if snapshot != record.snapshot:
                    self._request_sync(record)
            elif self.loaded and uid not in self._cleaning:
                self._cleaning.add(uid)
                d = self._spawn(self._remove_orphan(uid, runs), "remove orphan " + uid)
                d.addBoth(lambda _, uid=uid: self._cleaning.discard(uid))
        for uid, record in list(self.by_uid.items()):
            if uid not in groups and record.snapshot:
                # Its containers vanished (removed by hand): sync recreates them.
                self._request_sync(record)

    async def _remove_orphan(self, uid, runs):
        running = [run for run in runs if run.running]
        pod = "{}/{}".format(runs[0].label(LABEL_POD_NAMESPACE), runs[0].label(LABEL_POD_NAME))
        if running:
            self.log.info("edged stops {count} containers of pod {pod} (uid {uid}), which "
                          "it no longer has", count=len(running), pod=pod, uid=uid,
                          log_event="edged_orphan_removed")
        for run in runs:
            if run.running:
                try:
                    grace = int(run.label(LABEL_GRACE_PERIOD, "30"))
                except ValueError:
                    grace = 30
                await self._stop(run, grace)
            if uid in self.by_uid:
                return  # the pod came back meanwhile
            await self.runtime.remove_container(run.id)
        if uid not in self.by_uid:
            await self.volumes.teardown(uid)

    async def _resync_all(self):
        for record in list(self.pods.values()):
            self._request_sync(record)

    async def _resend_statuses(self):
        for record in list(self.pods.values()):
            if record.status and "phase" in record.status and not record.deleted:
                self._send_status(record, force=True)

    async def _container_gc(self):
        if not self.loaded:
            return
        infos = await self.runtime.list_containers(self.base_labels)
        removable = gc.dead_containers_to_remove(infos, set(self.by_uid), self.keep_dead)
        for info in removable:
            await self.runtime.remove_container(info.id)
        if removable:
            self.log.info("edged removed {count} dead containers", count=len(removable),
                          log_event="edged_container_gc")

    async def _image_gc(self):
        usage = await self.runtime.image_fs_usage()
        if usage.used_percent < self.image_gc_high:
            return
        images = await self.runtime.list_images()
        containers = await self.runtime.list_containers(None)
        in_use = {c.image_id for c in containers}
        wanted = {_normalise_image(c.image) for record in self.pods.values()
                  for c in record.spec.containers if c.image}
        in_use.update(image.id for image in images if wanted & set(image.tags))
        freed = 0
        for image in gc.images_to_remove(images, in_use, usage, self.image_gc_high,
                                         self.image_gc_low):
            try:
                await self.runtime.remove_image(image.id)
                freed += image.size
            except RuntimeFailure as e:
                self.log.info("edged image GC kept {image}: {error}", image=image.id,
                              error=e, log_event="edged_image_gc_skip")
        self.log.info("edged image GC: disk {used:.0f}% used, freed {freed} bytes",
                      used=usage.used_percent, freed=freed, log_event="edged_image_gc")
