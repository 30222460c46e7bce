"""SyncController (cloud module ``synccontroller``): reliable delivery across
disconnections and cloud restarts (reference 2.7).

* Every ACK CloudHub reports is recorded in the API as an ``ObjectSync`` named
  ``<node>.<object uid>`` in the object's namespace (``reliablesyncs.kubeedge.io/v1alpha1``,
  ``spec.objectAPIVersion/objectKind/objectName``, ``status.objectResourceVersion``); an
  ACKed delete removes it. Being API objects, the records survive a cloud restart and work
  the same on a real cluster with KubeEdge's CRDs.
* For each connected node — right after it connects, and every ``resync_period`` seconds
  as a safety net — what the node should have (its pods, and the configmaps/secrets they
  use) is compared with what it acknowledged: newer versions are sent, objects deleted
  meanwhile get a ``delete``, nothing else is sent (no relist storm, no duplicates).
  Messages already on their way (sent, not yet ACKed) are not sent again.
* API writes run with bounded concurrency; sends go through CloudHub's per-node queues,
  so a slow or dead node does not delay the others.
"""

from twisted.internet import defer, task
from twisted.logger import Logger

from kubeedge_tw.cloud.edgecontroller.refs import pod_references
from kubeedge_tw.cloud.k8s import AlreadyExists, K8sError, NotFound
from kubeedge_tw.common import names
from kubeedge_tw.common.module import Module
from kubeedge_tw.common.resource import ResourceError, parse_edge_resource

__all__ = ["SyncController", "OBJECT_SYNC_API"]

OBJECT_SYNC_API = "reliablesyncs.kubeedge.io/v1alpha1"
KIND_OF = {names.RES_POD: ("v1", "Pod", "pods"),
           names.RES_CONFIGMAP: ("v1", "ConfigMap", "configmaps"),
           names.RES_SECRET: ("v1", "Secret", "secrets")}
TYPE_OF_KIND = {kind: rtype for rtype, (_, kind, _) in KIND_OF.items()}
UID_LENGTH = 36


def _meta(obj):
    return (obj or {}).get("metadata") or {}


def _rv(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class SyncController(Module):
    """See the module docstring."""

    log = Logger()
    name = names.SYNCCONTROLLER
    group = names.SYNCCONTROLLER_GROUP

    def __init__(self, clock, kube, edgecontroller, cloudhub, *, resync_period=5,
                 write_concurrency=8):
        super().__init__(clock)
        self.kube = kube
        self.edgecontroller = edgecontroller
        self.cloudhub = cloudhub
        self.resync_period = resync_period
        self._writes = defer.DeferredSemaphore(write_concurrency)
        #: (node, type, namespace, name) -> (resourceVersion, uid) acknowledged.
        self.recorded = {}
        #: (node, type, namespace, name) -> resourceVersion sent and not yet answered.
        self.inflight = {}
        self._loop = None
        self._ready = False
        self.stats = dict(self.stats, resent=0, deletes_synthesised=0, records_written=0)

    # -- start/stop ---------------------------------------------------------------------------

    def startService(self):
        super().startService()
        self.cloudhub.add_observer(self)
        self.edgecontroller.add_send_listener(self._sent)
        self.edgecontroller.add_connect_listener(self.node_connected)
        self.kube.when_ready().addCallbacks(self._wire, lambda f: self.log.error(
            "synccontroller is idle: no Kubernetes API ({error})",
            error=f.getErrorMessage(), log_event="synccontroller_no_api"))

    def _wire(self, kube):
        self.objectsyncs = kube.informer("objectsyncs")
        self.objectsyncs.add_handler(self._record_seen, lambda old, new: self._record_seen(new),
                                     self._record_gone)
        self._ready = True
        self._loop = task.LoopingCall(self.reconcile_all)
        self._loop.clock = self.clock
        self._loop.start(self.resync_period, now=False).addErrback(
            lambda f: self.log.failure("sync loop failed", f))

    def stopService(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return super().stopService()

    # -- ObjectSync records -------------------------------------------------------------------

    @staticmethod
    def _split_name(name):
        """``<node>.<uid>`` -> (node, uid)."""
        if len(name) > UID_LENGTH + 1 and name[-UID_LENGTH - 1] == ".":
            return name[:-UID_LENGTH - 1], name[-UID_LENGTH:]
        return None, None

    def _record_seen(self, objsync):
        node, uid = self._split_name(_meta(objsync).get("name", ""))
        spec = objsync.get("spec") or {}
        rtype = TYPE_OF_KIND.get(spec.get("objectKind"))
        if node is None or rtype is None:
            return
        rv = (objsync.get("status") or {}).get("objectResourceVersion", "")
        key = (node, rtype, _meta(objsync).get("namespace"), spec.get("objectName"))
        current = self.recorded.get(key)
        if current is None or (_rv(rv) or 0) >= (_rv(current[0]) or 0) or current[1] != uid:
            self.recorded[key] = (rv, uid)

    def _record_gone(self, objsync):
        node, uid = self._split_name(_meta(objsync).get("name", ""))
        spec = objsync.get("spec") or {}
        rtype = TYPE_OF_KIND.get(spec.get("objectKind"))
        key = (node, rtype, _meta(objsync).get("namespace"), spec.get("objectName"))
        if self.recorded.get(key, (None, None))[1] == uid:
            del self.recorded[key]

    # -- what CloudHub and EdgeController tell us ---------------------------------------------

    def _sent(self, node, message):
        key = self._key(node, message)
        if key is not None:
            self.inflight[key] = message.resource_version

    def _key(self, node, message):
        try:
            parts = parse_edge_resource(message.resource)
        except ResourceError:
            return None
        if parts.type not in KIND_OF or not parts.name:
            return None
        return (node, parts.type, parts.namespace, parts.name)

    def node_undelivered(self, node, message, reason):
        key = self._key(node, message)
        if key is not None and self.inflight.get(key) == message.resource_version:
            del self.inflight[key]

    def node_acked(self, node, message, object_key):
        key = self._key(node, message)
        if key is None:
            return
        if self.inflight.get(key) == message.resource_version:
            del self.inflight[key]
        content = message.content_object()
        uid = _meta(content).get("uid") if isinstance(content, dict) else None
        if message.operation == names.OP_DELETE:
            previous = self.recorded.pop(key, None)
            uid = uid or (previous[1] if previous else None)
            if uid:
                self._write(self._delete_record, key, uid)
            return
        if not uid:
            return
        self.recorded[key] = (message.resource_version, uid)
        self._write(self._put_record, key, uid, message.resource_version)

    def _write(self, function, *args):
        if not self._ready:
            return
        d = self._writes.run(lambda: defer.Deferred.fromCoroutine(function(*args)))
        d.addErrback(self._write_failed)

    def _write_failed(self, failure):
        if not self.running:
            self.log.debug("ObjectSync write interrupted by the stop")
            return None
        self.log.failure("ObjectSync write failed", failure)
        return None

    async def _put_record(self, key, uid, rv):
        node, rtype, namespace, name = key
        api_version, kind, _ = KIND_OF[rtype]
        record = {"apiVersion": OBJECT_SYNC_API, "kind": "ObjectSync",
                  "metadata": {"name": "{}.{}".format(node, uid), "namespace": namespace},
                  "spec": {"objectAPIVersion": api_version, "objectKind": kind,
                           "objectName": name},
                  "status": {"objectResourceVersion": rv}}
        client = self.kube.client
        try:
            await client.create("objectsyncs", record, namespace=namespace)
        except AlreadyExists:
            pass
        patch = {"status": {"objectResourceVersion": rv}}
        try:
            await client.patch_status("objectsyncs", record["metadata"]["name"], patch,
                                      namespace=namespace)
        except NotFound:
            # A CRD without the status subresource: status lives in the main resource.
            await client.patch("objectsyncs", record["metadata"]["name"], patch,
                               namespace=namespace)
        self.stats["records_written"] += 1

    async def _delete_record(self, key, uid):
        node, _, namespace, _ = key
        try:
            await self.kube.client.delete("objectsyncs", "{}.{}".format(node, uid),
                                          namespace=namespace)
        except NotFound:
            pass

    # -- reconciliation -----------------------------------------------------------------------

    def node_connected(self, node):
        """Sync a node that just (re)connected, on the next reactor turn."""
        if self._ready:
            self.clock.callLater(0, self._reconcile_nodes, [node])

    def reconcile_all(self):
        """Reconcile every connected node (the periodic safety net)."""
        if self._ready:
            self._reconcile_nodes(self.cloudhub.connected_nodes())

    def _reconcile_nodes(self, nodes):
        ec = self.edgecontroller
        if not ec.informers or not all(i.has_synced for i in ec.informers.values()) \
                or not self.objectsyncs.has_synced:
            return
        wanted_nodes = set(n for n in nodes if self.cloudhub.is_connected(n))
        if not wanted_nodes:
            return
        desired = {node: {} for node in wanted_nodes}
        for pod in ec.informers["pods"].list():
            node = (pod.get("spec") or {}).get("nodeName")
            if node not in desired:
                continue
            meta = _meta(pod)
            namespace = meta.get("namespace", "default")
            desired[node][(names.RES_POD, namespace, meta.get("name"))] = pod
            for rtype, name in pod_references(pod):
                informer = ec.informers["configmaps" if rtype == names.RES_CONFIGMAP
                                        else "secrets"]
                obj = informer.get(name, namespace)
                if obj is not None:
                    desired[node][(rtype, namespace, name)] = obj
        for node, objects in desired.items():
            self._reconcile(node, objects)

    def _reconcile(self, node, objects):
        ec = self.edgecontroller
        for (rtype, namespace, name), obj in objects.items():
            key = (node, rtype, namespace, name)
            meta = _meta(obj)
            wanted = meta.get("resourceVersion", "")
            if rtype == names.RES_POD:
                wanted = ec.last_sent_version("{}/{}".format(namespace, name)) or wanted
            recorded = self.recorded.get(key)
            if recorded is not None and recorded[1] == meta.get("uid") \
                    and (_rv(recorded[0]) or 0) >= (_rv(wanted) or 0):
                continue
            if key in self.inflight:
                continue
            self.stats["resent"] += 1
            if rtype == names.RES_POD:
                ec.send_pod(node, obj)
            else:
                ec.send_object(node, rtype, ec_with_kind(rtype, obj))
        for key, (rv, uid) in list(self.recorded.items()):
            if key[0] != node or key[1:] in objects or key in self.inflight:
                continue
            _, rtype, namespace, name = key
            resource = KIND_OF[rtype][2]
            informer = ec.informers.get(resource)
            still = informer.get(name, namespace) if informer is not None else None
            if still is not None and rtype != names.RES_POD \
                    and _meta(still).get("uid") == uid:
                # Still exists, just not used on this node any more: forget the record.
                self.recorded.pop(key, None)
                self._write(self._delete_record, key, uid)
                continue
            self.stats["deletes_synthesised"] += 1
            self.log.info("node {node} missed the deletion of {rtype} {ns}/{name}: sending "
                          "it now", node=node, rtype=rtype, ns=namespace, name=name,
                          log_event="synccontroller_delete")
            ec.send_delete(node, rtype, namespace, name, uid)

    def handle(self, message):
        """SyncController takes no bus messages; CloudHub reports through the observer."""
        return None


def ec_with_kind(rtype, obj):
    """The object with kind/apiVersion set, as sent to the edge."""
    api_version, kind, _ = KIND_OF[rtype]
    obj = dict(obj)
    obj.setdefault("apiVersion", api_version)
    obj.setdefault("kind", kind)
    return obj
