"""MetaManager (edge module ``metaManager``, group ``meta``): the edge's sqlite cache
between edged and the cloud — KubeEdge's offline autonomy (reference 3.1).

From the cloud (any source but the edge's own modules):

* ``insert``/``update``/``delete`` are **persisted first**, then forwarded to edged, then
  acknowledged to the cloud (``response`` ``"OK"``, ``parent_msg_id`` = the cloud's id:
  the v1.2+ ACK). At-least-once delivery is harmless: an insert of an existing key keeps
  the stored object (KubeEdge's rule), an update identical to what is stored, or older
  than it by resourceVersion, is acknowledged but not forwarded again.

From edged:

* ``query`` is answered from the database: with a name, that object; without one
  (``default/pod``), every row of the type. For the remote-queryable types (configmap,
  secret, node, service, endpoints, lease, PV, PVC, volumeattachment) a miss is asked
  of the cloud while it is connected (``remoteQueryTimeout``), stored and answered; while
  it is disconnected the database answers at once. Replies carry, KubeEdge-style, a list
  of JSON strings (empty when the object does not exist).
* ``update`` of ``podstatus``/``nodestatus`` is stored (an unchanged pod status is not
  sent again) and forwarded to the cloud; other messages (node registration ``insert``,
  patches, leases) go to the cloud, and the cloud's reply goes back to edged.

Every ``podStatusSyncInterval`` seconds the pod statuses whose pod still exists are sent
to the cloud in one ``update`` on ``default/podstatus``; orphans are deleted.
"""

import json

from twisted.internet import defer, task
from twisted.logger import Logger

from kubeedge_tw.common import names
from kubeedge_tw.common.bus import BusStopped, SyncTimeout, UnknownModule
from kubeedge_tw.common.message import new_error, new_message, new_response
from kubeedge_tw.common.module import Module, QueueFull
from kubeedge_tw.common.resource import ResourceError, parse_edge_resource

__all__ = ["MetaManager", "REMOTE_QUERY_TYPES", "FORWARD_TO_EDGED"]

#: Types edged may ask the cloud for when they are not stored (KubeEdge 1.1+ list + lease).
REMOTE_QUERY_TYPES = frozenset({
    names.RES_CONFIGMAP, names.RES_SECRET, names.RES_NODE, names.RES_SERVICE,
    names.RES_ENDPOINTS, names.RES_LEASE, "persistentvolume", "persistentvolumeclaim",
    "volumeattachment", "serviceaccounttoken",
})
#: Cloud object types edged consumes.
FORWARD_TO_EDGED = frozenset({names.RES_POD, names.RES_CONFIGMAP, names.RES_SECRET})
#: Status types edged reports and we keep for the bulk resync.
STATUS_TYPES = frozenset({names.RES_PODSTATUS, names.RES_NODESTATUS})
#: Sources that are modules of this edge (everything else came from the cloud).
LOCAL_SOURCES = frozenset({names.EDGED, names.METAMANAGER, names.DEVICETWIN,
                           names.EVENTBUS, names.SERVICEBUS, "edgehub"})
CLOUD_WRITE_OPERATIONS = frozenset({names.OP_INSERT, names.OP_UPDATE, names.OP_DELETE})


def _is_not_found(obj):
    return isinstance(obj, dict) and obj.get("kind") == "Status" and obj.get("code") == 404


def _as_status(err):
    """A Go ``StatusError`` as cloudcore marshals it (``{"ErrStatus": {...}}``) or a
    plain Status, as a Status dict with ``kind``."""
    status = err.get("ErrStatus", err) if isinstance(err, dict) else {"message": str(err)}
    status = dict(status) if isinstance(status, dict) else {"message": str(status)}
    status.setdefault("code", 500)
    status["kind"] = "Status"
    return status


def _unwrap(content):
    """The object in a cloud reply: a bare object, a Status, a ``{"ErrStatus": ...}``
    error, or cloudcore's ``{"Object": ..., "Err": ...}`` wrapper (reference 2.12)."""
    if isinstance(content, dict) and "Object" in content and set(content) <= {"Object", "Err"}:
        if content.get("Err"):
            return _as_status(content["Err"])
        return content.get("Object")
    if isinstance(content, dict) and set(content) == {"ErrStatus"}:
        return _as_status(content)
    return content


class MetaManager(Module):
    """See the module docstring."""

    log = Logger()
    name = names.METAMANAGER
    group = names.META_GROUP
    # Remote queries wait on the cloud; other messages must not queue behind them.
    concurrency = 8

    def __init__(self, clock, store, *, remote_query_timeout=10, pod_status_sync_interval=60,
                 namespace="default"):
        super().__init__(clock)
        self.store = store
        self.remote_query_timeout = remote_query_timeout
        self.pod_status_sync_interval = pod_status_sync_interval
        self.namespace = namespace
        self.cloud_connected = False
        self._resync = None

    # -- service ------------------------------------------------------------------------------

    def startService(self):
        super().startService()
        self._resync = task.LoopingCall(self.resync_pod_status)
        self._resync.clock = self.clock
        self._resync.start(self.pod_status_sync_interval, now=False).addErrback(
            lambda f: self.log.failure("pod status resync loop failed", f))

    @defer.inlineCallbacks
    def stopService(self):
        if self._resync is not None and self._resync.running:
            self._resync.stop()
        yield super().stopService()
        self.store.close()

    # -- dispatch -----------------------------------------------------------------------------

    def handle(self, message):
        if message.operation == names.OP_PUBLISH and message.resource == names.RES_NODE_CONNECTION:
            self.cloud_connected = message.content == names.CLOUD_CONNECTED
            self.log.info("metaManager: cloud {state}", state="connected" if
                          self.cloud_connected else "disconnected",
                          log_event="metamanager_cloud_state")
            return None
        if message.source in LOCAL_SOURCES:
            return self._from_edge(message)
        return self._from_cloud(message)

    # -- cloud -> edge ------------------------------------------------------------------------

    @defer.inlineCallbacks
    def _from_cloud(self, message):
        if message.operation == names.OP_RESPONSE:
            # A cloud reply nobody waited for any more: keep the object it carries.
            yield self._store_reply(message)
            return
        if message.operation not in CLOUD_WRITE_OPERATIONS:
            self.log.info("metaManager ignores {what} from {source}", what=message.describe(),
                          source=message.source, log_event="metamanager_ignored")
            return
        try:
            parts = parse_edge_resource(message.resource)
        except ResourceError as e:
            self._reply_cloud(new_error(message, "bad resource: {}".format(e),
                                        source=names.METAMANAGER))
            return
        if not parts.name:
            self._reply_cloud(new_error(message, "resource {!r} names no object".format(
                message.resource), source=names.METAMANAGER))
            return
        content = message.content_object()
        if message.operation == names.OP_DELETE:
            yield self.store.delete(message.resource)
            if parts.type == names.RES_POD:
                yield self.store.delete("{}/{}/{}".format(parts.namespace, names.RES_PODSTATUS,
                                                          parts.name))
            changed = True  # edged may still run it even if we had no row
        else:
            result = yield self.store.put(message.resource, parts.type, content,
                                          only_if_absent=message.operation == names.OP_INSERT)
            changed = result == "written"
            if result == "stale":
                self.log.info("metaManager kept a newer {key} than the cloud's {what}",
                              key=message.resource, what=message.describe(),
                              log_event="metamanager_stale_update")
        if changed and parts.type in FORWARD_TO_EDGED:
            self._to_edged(message)
        # Persisted (or already there): acknowledge, as a v1.2+ edge does.
        self._reply_cloud(new_response(message, "OK"))

    @defer.inlineCallbacks
    def _store_reply(self, message):
        try:
            parts = parse_edge_resource(message.resource)
        except ResourceError:
            return
        obj = _unwrap(message.content_object())
        if parts.name and isinstance(obj, dict) and not _is_not_found(obj) \
                and obj.get("kind") != "Status":
            yield self.store.put(message.resource, parts.type, obj)

    def _to_edged(self, message):
        try:
            self.bus.send(names.EDGED, message)
        except UnknownModule:
            self.log.debug("no edged module for {what}", what=message.describe())
        except QueueFull:
            self.log.warn("edged is busy: {what} stays stored for its next resync",
                          what=message.describe(), log_event="metamanager_edged_busy")

    def _reply_cloud(self, message):
        try:
            self.bus.send(names.EDGEHUB, message)
        except (UnknownModule, QueueFull) as e:
            self.log.warn("cannot send {what} to the cloud: {error}",
                          what=message.describe(), error=e, log_event="metamanager_no_hub")

    # -- edge -> cloud ------------------------------------------------------------------------

    def _from_edge(self, message):
        if message.operation == names.OP_QUERY:
            return self._query(message)
        try:
            parts = parse_edge_resource(message.resource)
        except ResourceError:
            parts = None
        if (message.operation == names.OP_UPDATE and parts is not None
                and parts.type in STATUS_TYPES and parts.name):
            return self._status_update(message, parts)
        return self._relay(message)

    @defer.inlineCallbacks
    def _status_update(self, message, parts):
        result = yield self.store.put(message.resource, parts.type, message.content_object())
        if result != "same" or parts.type == names.RES_NODESTATUS:
            # Node status also carries heartbeat times: always forwarded.
            self._reply_cloud(message)
        if message.sync:
            self.send_resp(new_response(message, "OK", source=names.METAMANAGER))

    def _relay(self, message):
        """Send an edge message to the cloud; relay the cloud's reply to a sync caller."""
        if not message.sync:
            self._reply_cloud(message)
            return None
        if not self.cloud_connected:
            self.send_resp(new_error(message, "cloud is disconnected",
                                     source=names.METAMANAGER))
            return None
        upstream = new_message(message.source, message.group, message.operation,
                               message.resource, message.content, sync=True,
                               clock=self.clock)
        d = self.bus.send_sync(names.EDGEHUB, upstream, self.remote_query_timeout)

        def answered(reply):
            self.send_resp(reply.replace(parent_msg_id=message.msg_id))

        def failed(failure):
            failure.trap(SyncTimeout, BusStopped, UnknownModule, QueueFull)
            self.send_resp(new_error(message, "no answer from the cloud: {}".format(
                failure.getErrorMessage()), source=names.METAMANAGER))
        d.addCallbacks(answered, failed)
        return None  # the reply arrives later; do not hold the inbox

    @defer.inlineCallbacks
    def _query(self, message):
        try:
            parts = parse_edge_resource(message.resource)
        except ResourceError as e:
            self.send_resp(new_error(message, "bad resource: {}".format(e),
                                     source=names.METAMANAGER))
            return
        if not parts.name:
            rows = yield self.store.by_type(parts.type)
            self._answer(message, [value for _, value in rows])
            return
        value = yield self.store.get(message.resource)
        if value is not None or parts.type not in REMOTE_QUERY_TYPES or not self.cloud_connected:
            self._answer(message, [value] if value is not None else [])
            return
        self._remote_query(message, parts)

    def _remote_query(self, message, parts):
        query = new_message(message.source or names.EDGED, message.group or names.META_GROUP,
                            names.OP_QUERY, message.resource, None, sync=True,
                            clock=self.clock)
        d = self.bus.send_sync(names.EDGEHUB, query, self.remote_query_timeout)

        @defer.inlineCallbacks
        def answered(reply):
            if reply.operation == names.OP_ERROR:
                self.send_resp(new_error(message, reply.content, source=names.METAMANAGER))
                return
            obj = _unwrap(reply.content_object())
            if not isinstance(obj, dict) or _is_not_found(obj) or obj.get("kind") == "Status":
                self._answer(message, [])
                return
            yield self.store.put(message.resource, parts.type, obj)
            self._answer(message, [json.dumps(obj, separators=(",", ":"), sort_keys=True)])

        def failed(failure):
            failure.trap(SyncTimeout, BusStopped, UnknownModule, QueueFull)
            self.log.info("remote query for {key} failed: {error}", key=message.resource,
                          error=failure.getErrorMessage(), log_event="metamanager_remote_query")
            self.send_resp(new_error(message, "cloud did not answer: {}".format(
                failure.getErrorMessage()), source=names.METAMANAGER))
        d.addCallbacks(answered, failed)
        d.addErrback(lambda f: self.log.failure("remote query reply handling failed", f))

    def _answer(self, message, values):
        self.send_resp(new_response(message, values, source=names.METAMANAGER))

    # -- periodic -----------------------------------------------------------------------------

    @defer.inlineCallbacks
    def resync_pod_status(self):
        """Send every pod status whose pod still exists in one bulk update; delete the
        statuses of pods that are gone."""
        rows = yield self.store.prune_podstatus()
        if not rows or not self.cloud_connected:
            return
        statuses = []
        for _, value in rows:
            try:
                statuses.append(json.loads(value))
            except ValueError:
                continue
        self._reply_cloud(new_message(names.EDGED, names.META_GROUP, names.OP_UPDATE,
                                      "{}/{}".format(self.namespace, names.RES_PODSTATUS),
                                      statuses, clock=self.clock))
