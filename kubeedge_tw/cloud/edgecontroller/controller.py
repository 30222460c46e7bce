"""EdgeController (cloud module ``edgecontroller``): Kubernetes objects to the edge nodes
that need them, and what the edges report back into the API (reference 1.2, 2.5-2.9, 5).

Downstream, from shared informers (pods, nodes, configmaps, secrets):

* a pod bound (``spec.nodeName``) to an edge node goes to that node as ``update`` on
  ``<ns>/pod/<name>`` (cloudcore v1.15 sends new pods as ``update`` too), the full
  v1.Pod, ``header.resourceversion`` set; changes that touch only the status the edge
  reported itself are not sent back; a pod removed from the API goes as ``delete``;
* ConfigMap/Secret updates and deletes go only to the nodes running pods that reference
  them (the edge asks for them when a pod needs them; reference 2.12).

Edge queries for configmap, secret, node, pod, service, endpoints and lease are answered
at once: the object, or cloudcore's NotFound shapes (``{"ErrStatus": ...}``, for leases
the ``{"Object", "Err"}`` wrapper) — the edge never waits for a timeout.

Upstream: node registration (``insert`` on ``<ns>/nodestatus/<node>`` or, v1.15,
``default/node/<node>``) creates the Node with the edge role label; node status
(``update`` on nodestatus, v1.0-v1.2 shape, or ``patch`` on nodepatch, v1.15) and leases
are written through; pod status (``update`` on ``<ns>/podstatus[/<name>]`` single or bulk,
or v1.15 ``patch`` on ``podpatch``) is patched into the pod, keeping condition transition
times; a status for a pod that no longer exists makes the edge delete it. A terminating
pod is finalized (deleted with grace 0) once the edge reports its containers gone, or
when the edge deletes it (v1.15), or when its node no longer exists.

When CloudHub reports a node disconnected its conditions become Unknown after
``nodeUpdateFrequency`` seconds (``kubectl get nodes`` shows NotReady); nothing is
evicted: the edge keeps running its pods, and its next status makes it Ready again.
"""

import datetime

from twisted.internet import defer
from twisted.logger import Logger

from kubeedge_tw.cloud.edgecontroller.refs import EDGE_ROLE_LABEL, pod_references, spec_changed
from kubeedge_tw.cloud.k8s import AlreadyExists, Conflict, K8sError, NotFound
from kubeedge_tw.common import names
from kubeedge_tw.common.message import new_message, new_response
from kubeedge_tw.common.module import Module
from kubeedge_tw.common.resource import ResourceError, node_of, parse_cloud_resource

__all__ = ["EdgeController", "RESOURCE_NAMES", "not_found_status"]

#: Wire resource type -> API resource name.
RESOURCE_NAMES = {
    names.RES_POD: "pods", names.RES_NODE: "nodes", names.RES_CONFIGMAP: "configmaps",
    names.RES_SECRET: "secrets", names.RES_SERVICE: "services",
    names.RES_ENDPOINTS: "endpoints", names.RES_LEASE: "leases",
}
KINDS = {"pods": ("v1", "Pod"), "nodes": ("v1", "Node"), "configmaps": ("v1", "ConfigMap"),
         "secrets": ("v1", "Secret"), "services": ("v1", "Service"),
         "endpoints": ("v1", "Endpoints"), "leases": ("coordination.k8s.io/v1", "Lease")}
INFORMED = ("pods", "nodes", "configmaps", "secrets")
CLUSTER_SCOPED = frozenset({"nodes"})


def not_found_status(kind, name, group=""):
    """A NotFound Status as the API server words it (without kind/apiVersion, as Go's
    StatusError marshals it)."""
    qualified = "{}.{}".format(kind, group) if group else kind
    details = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    return {"metadata": {}, "status": "Failure",
            "message": '{} "{}" not found'.format(qualified, name), "reason": "NotFound",
            "details": details, "code": 404}


def _meta(obj):
    return (obj or {}).get("metadata") or {}


def _key(obj):
    meta = _meta(obj)
    return "{}/{}".format(meta.get("namespace", ""), meta.get("name", ""))


def _with_kind(resource, obj):
    api_version, kind = KINDS[resource]
    obj = dict(obj)
    obj.setdefault("apiVersion", api_version)
    obj.setdefault("kind", kind)
    return obj


def _status_of(error):
    status = getattr(error, "status", None)
    if isinstance(status, dict):
        return {k: v for k, v in status.items() if k not in ("kind", "apiVersion")}
    return {"metadata": {}, "status": "Failure", "message": str(error),
            "reason": "InternalError", "code": 500}


class EdgeController(Module):
    """See the module docstring."""

    log = Logger()
    name = names.EDGECONTROLLER
    group = names.EDGECONTROLLER_GROUP
    concurrency = 16

    def __init__(self, clock, kube, *, node_update_frequency=10):
        super().__init__(clock)
        self.kube = kube
        self.node_update_frequency = node_update_frequency
        self.connected = set()
        self._grace = {}
        self._pod_node = {}           # "ns/name" -> node the pod was sent to
        self._sent_rv = {}            # "ns/name" -> resourceVersion last sent (pods)
        self._ready = False
        self.informers = {}
        self._send_listeners = []
        self._connect_listeners = []

    def add_send_listener(self, listener):
        """Call ``listener(node, message)`` for every object message sent to an edge."""
        self._send_listeners.append(listener)

    def add_connect_listener(self, listener):
        """Call ``listener(node)`` when a node (re)connects."""
        self._connect_listeners.append(listener)

    # -- start --------------------------------------------------------------------------------

    def startService(self):
        super().startService()
        d = self.kube.when_ready()
        d.addCallbacks(self._wire, lambda f: self.log.error(
            "edgecontroller is idle: no Kubernetes API ({error})",
            error=f.getErrorMessage(), log_event="edgecontroller_no_api"))

    def _wire(self, kube):
        for resource in INFORMED:
            self.informers[resource] = kube.informer(resource)
        self.informers["pods"].add_handler(self._pod_added, self._pod_updated,
                                           self._pod_deleted)
        for resource in ("configmaps", "secrets"):
            self.informers[resource].add_handler(
                None, lambda old, new, r=resource: self._object_updated(r, new),
                lambda obj, r=resource: self._object_deleted(r, obj))
        self._ready = True
        self.log.info("edgecontroller watching pods, nodes, configmaps and secrets",
                      log_event="edgecontroller_ready")

    def stopService(self):
        for call in self._grace.values():
            if call.active():
                call.cancel()
        self._grace.clear()
        return super().stopService()

    @property
    def client(self):
        return self.kube.client

    # -- which nodes are edge nodes -----------------------------------------------------------

    def is_edge_node(self, node):
        """Connected through CloudHub, or labelled ``node-role.kubernetes.io/edge``."""
        if not node:
            return False
        if node in self.connected:
            return True
        informer = self.informers.get("nodes")
        obj = informer.get(node) if informer is not None else None
        return obj is not None and EDGE_ROLE_LABEL in (_meta(obj).get("labels") or {})

    def pods_on(self, node):
        """The pods (informer cache) bound to ``node``."""
        informer = self.informers.get("pods")
        if informer is None:
            return []
        return [p for p in informer.list() if (p.get("spec") or {}).get("nodeName") == node]

    def referenced(self, node):
        """``{(kind, namespace, name)}`` of configmaps/secrets that pods on ``node`` use."""
        refs = set()
        for pod in self.pods_on(node):
            namespace = _meta(pod).get("namespace", "default")
            refs.update((kind, namespace, name) for kind, name in pod_references(pod))
        return refs

    def nodes_using(self, kind, namespace, name):
        """Edge nodes running a pod in ``namespace`` that references ``kind/name``."""
        result = set()
        for pod in self.informers["pods"].list():
            meta = _meta(pod)
            node = (pod.get("spec") or {}).get("nodeName")
            if meta.get("namespace") == namespace and self.is_edge_node(node) \
                    and (kind, name) in pod_references(pod):
                result.add(node)
        return result

    # -- downstream ---------------------------------------------------------------------------

    def send_object(self, node, rtype, obj, operation=names.OP_UPDATE):
        """Send one object to ``node`` (``rtype`` is the wire type, e.g. ``pod``)."""
        meta = _meta(obj)
        resource = "node/{}/{}/{}/{}".format(node, meta.get("namespace") or "default", rtype,
                                             meta.get("name"))
        message = new_message(names.EDGECONTROLLER, names.WIRE_GROUP_RESOURCE, operation,
                              resource, obj, resource_version=meta.get("resourceVersion", ""),
                              clock=self.clock)
        try:
            self.send(names.CLOUDHUB, message)
        except Exception as e:
            self.log.warn("cannot hand {what} to cloudhub: {error}", what=message.describe(),
                          error=e, log_event="edgecontroller_send_failed")
            return None
        edge_view = message.replace(resource=resource.split("/", 2)[2])
        for listener in self._send_listeners:
            listener(node, edge_view)
        return message

    def send_pod(self, node, pod):
        """Send a pod (as ``update``, like cloudcore v1.15) and remember what was sent."""
        key = _key(pod)
        self._pod_node[key] = node
        self._sent_rv[key] = _meta(pod).get("resourceVersion", "")
        return self.send_object(node, names.RES_POD, _with_kind("pods", pod))

    def send_delete(self, node, rtype, namespace, name, uid=None, obj=None):
        """Tell ``node`` that an object is gone."""
        content = obj or {"metadata": {"name": name, "namespace": namespace,
                                       **({"uid": uid} if uid else {})}}
        content = dict(content, metadata=dict(_meta(content), name=name, namespace=namespace))
        return self.send_object(node, rtype, content, operation=names.OP_DELETE)

    def last_sent_version(self, key):
        """The resourceVersion of the last spec change sent for pod ``ns/name``."""
        return self._sent_rv.get(key)

    def _pod_added(self, pod):
        node = (pod.get("spec") or {}).get("nodeName")
        if self.is_edge_node(node):
            self.send_pod(node, pod)

    def _pod_updated(self, old, new):
        old_node = (old.get("spec") or {}).get("nodeName")
        node = (new.get("spec") or {}).get("nodeName")
        if old_node and old_node != node and self.is_edge_node(old_node):
            self.send_delete(old_node, names.RES_POD, _meta(new).get("namespace"),
                             _meta(new).get("name"), obj=_with_kind("pods", new))
        if not self.is_edge_node(node):
            return
        if old_node != node or spec_changed(old, new) or self._pod_node.get(_key(new)) != node:
            self.send_pod(node, new)
        self._finalize_if_done(new)

    def _pod_deleted(self, pod):
        key = _key(pod)
        node = self._pod_node.pop(key, None) or (pod.get("spec") or {}).get("nodeName")
        self._sent_rv.pop(key, None)
        if self.is_edge_node(node):
            self.send_object(node, names.RES_POD, _with_kind("pods", pod), names.OP_DELETE)

    def _object_updated(self, resource, obj):
        rtype = names.RES_CONFIGMAP if resource == "configmaps" else names.RES_SECRET
        meta = _meta(obj)
        for node in self.nodes_using(rtype, meta.get("namespace"), meta.get("name")):
            self.send_object(node, rtype, _with_kind(resource, obj))

    def _object_deleted(self, resource, obj):
        rtype = names.RES_CONFIGMAP if resource == "configmaps" else names.RES_SECRET
        meta = _meta(obj)
        for node in self.nodes_using(rtype, meta.get("namespace"), meta.get("name")):
            # cloudcore sends only the identity of a deleted ConfigMap (reference 2.12).
            self.send_delete(node, rtype, meta.get("namespace"), meta.get("name"),
                             meta.get("uid"))

    # -- messages from the edges (via cloudhub) -----------------------------------------------

    def handle(self, message):
        if message.source == names.CLOUDHUB and message.operation in (
                names.OP_CONNECTED, names.OP_DISCONNECTED):
            return self._connection_event(message)
        if not self._ready:
            self.log.info("edgecontroller not ready; dropping {what}",
                          what=message.describe(), log_event="edgecontroller_not_ready")
            return None
        try:
            res = parse_cloud_resource(message.resource)
        except ResourceError:
            self.log.info("edgecontroller ignores {what}", what=message.describe(),
                          log_event="edgecontroller_ignored")
            return None
        handler = {
            (names.OP_QUERY, None): self._query,
            (names.OP_INSERT, names.RES_NODESTATUS): self._register,
            (names.OP_INSERT, names.RES_NODE): self._register,
            (names.OP_UPDATE, names.RES_NODESTATUS): self._node_status,
            (names.OP_PATCH, names.RES_NODEPATCH): self._node_patch,
            (names.OP_UPDATE, names.RES_PODSTATUS): self._pod_status,
            (names.OP_PATCH, names.RES_PODPATCH): self._pod_patch,
            (names.OP_INSERT, names.RES_LEASE): self._lease,
            (names.OP_UPDATE, names.RES_LEASE): self._lease,
            (names.OP_DELETE, names.RES_POD): self._edge_deleted_pod,
        }.get((message.operation, None if message.operation == names.OP_QUERY else res.type))
        if handler is None:
            if message.operation != names.OP_RESPONSE:
                self.log.info("edgecontroller has no handler for {what}",
                              what=message.describe(), log_event="edgecontroller_unhandled")
            return None
        d = defer.Deferred.fromCoroutine(handler(message, res))
        d.addErrback(lambda f: self.log.failure("edgecontroller failed on {what}", f,
                                                what=message.describe()))
        return d

    def _reply(self, request, content, resource_version=""):
        reply = new_response(request, content, source=names.EDGECONTROLLER, clock=self.clock)
        reply = reply.replace(group=names.WIRE_GROUP_RESOURCE,
                              resource_version=resource_version or "")
        try:
            self.send(names.CLOUDHUB, reply)
        except Exception as e:
            self.log.warn("cannot reply to {what}: {error}", what=request.describe(),
                          error=e, log_event="edgecontroller_send_failed")

    def _now(self):
        return datetime.datetime.fromtimestamp(
            self.clock.seconds(), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    # queries ------------------------------------------------------------------------------

    async def _query(self, message, res):
        resource = RESOURCE_NAMES.get(res.type)
        if resource is None or not res.name:
            self._reply(message, {"ErrStatus": {
                "metadata": {}, "status": "Failure", "reason": "BadRequest", "code": 400,
                "message": "cannot query {!r}".format(res.type)}})
            return
        namespace = None if resource in CLUSTER_SCOPED else res.namespace
        obj = None
        informer = self.informers.get(resource)
        try:
            if informer is not None and informer.has_synced:
                obj = informer.get(res.name, namespace)
                if obj is None:
                    raise NotFound("not in the informer cache", code=404)
            else:
                obj = await self.client.get(resource, res.name, namespace=namespace)
        except NotFound:
            group = "coordination.k8s.io" if resource == "leases" else ""
            status = not_found_status(res.type, res.name, group)
            if resource == "leases":
                self._reply(message, {"Object": None, "Err": {"ErrStatus": status}})
            else:
                self._reply(message, {"ErrStatus": status})
            return
        except K8sError as e:
            self._reply(message, {"ErrStatus": _status_of(e)})
            return
        obj = _with_kind(resource, obj)
        self._reply(message, obj, _meta(obj).get("resourceVersion", ""))

    # nodes --------------------------------------------------------------------------------

    async def _register(self, message, res):
        node_name = res.name or res.node
        content = message.content_object()
        node = content if isinstance(content, dict) else {}
        if "Status" in node and "metadata" not in node:
            node = {"status": node.get("Status") or {}}  # v1.0-style payload
        node = dict(node)
        meta = dict(_meta(node))
        meta["name"] = node_name
        labels = dict(meta.get("labels") or {})
        labels.setdefault(EDGE_ROLE_LABEL, "")
        meta["labels"] = labels
        for key in ("resourceVersion", "uid", "creationTimestamp"):
            meta.pop(key, None)
        node["metadata"] = meta
        node = _with_kind("nodes", node)
        try:
            created = await self.client.create("nodes", node)
            self.log.info("registered edge node {node}", node=node_name,
                          log_event="edgecontroller_node_registered")
        except AlreadyExists:
            # Registered before (or created by a status report): add the labels the edge
            # asks for, never removing any.
            created = await self.client.get("nodes", node_name)
            present = _meta(created).get("labels") or {}
            missing = {k: v for k, v in labels.items() if k not in present}
            if missing:
                created = await self.client.patch("nodes", node_name, {"metadata": {
                    "labels": missing}})
        except K8sError as e:
            if res.type == names.RES_NODE:
                self._reply(message, {"Object": None, "Err": {"ErrStatus": _status_of(e)}})
            else:
                self._reply(message, "")
            return
        if node.get("status"):
            try:
                created = await self.client.patch_status(
                    "nodes", node_name, {"status": self._fresh(node["status"])})
            except K8sError as e:
                self.log.warn("registration status of {node}: {error}", node=node_name,
                              error=e, log_event="edgecontroller_status_failed")
        if res.type == names.RES_NODE:
            self._reply(message, {"Object": _with_kind("nodes", created), "Err": None},
                        _meta(created).get("resourceVersion", ""))
        else:
            self._reply(message, "OK")

    def _fresh(self, status):
        """A node status with heartbeat times set to now."""
        status = dict(status)
        now = self._now()
        conditions = []
        for condition in status.get("conditions") or ():
            condition = dict(condition)
            condition["lastHeartbeatTime"] = now
            condition.setdefault("lastTransitionTime", now)
            conditions.append(condition)
        if conditions:
            status["conditions"] = conditions
        return status

    async def _node_status(self, message, res):
        content = message.content_object()
        status = content.get("Status") if isinstance(content, dict) and "Status" in content \
            else (content.get("status") if isinstance(content, dict) else None)
        if not isinstance(status, dict):
            self._reply(message, "")
            return
        try:
            await self._write_node_status(res.name or res.node, self._fresh(status))
        except NotFound:
            await self._register(message.replace(content={"status": status}), res)
            return
        except K8sError as e:
            self.log.warn("node status of {node}: {error}", node=res.name, error=e,
                          log_event="edgecontroller_status_failed")
        self._reply(message, "OK")

    async def _write_node_status(self, node_name, status):
        """Patch a node's status, keeping each condition's transition time when its
        status did not change."""
        current = await self.client.get("nodes", node_name)
        old = {c.get("type"): c for c in (current.get("status") or {}).get("conditions") or ()}
        for condition in status.get("conditions") or ():
            previous = old.get(condition.get("type"))
            if previous and previous.get("status") == condition.get("status") \
                    and previous.get("lastTransitionTime"):
                condition["lastTransitionTime"] = previous["lastTransitionTime"]
        return await self.client.patch_status("nodes", node_name, {"status": status})

    async def _node_patch(self, message, res):
        patch = message.content_object()
        if not isinstance(patch, dict):
            self._reply(message, {"Object": None, "Err": {"ErrStatus": {
                "status": "Failure", "reason": "BadRequest", "code": 400,
                "message": "node patch is not a JSON object"}}})
            return
        try:
            node = await self.client.patch_status("nodes", res.name, patch,
                                                  patch_type="strategic")
        except K8sError as e:
            self._reply(message, {"Object": None, "Err": {"ErrStatus": _status_of(e)}})
            return
        self._reply(message, {"Object": _with_kind("nodes", node), "Err": None},
                    _meta(node).get("resourceVersion", ""))

    async def _lease(self, message, res):
        lease = message.content_object()
        if not isinstance(lease, dict):
            lease = {}
        lease = _with_kind("leases", lease)
        meta = dict(_meta(lease), name=res.name, namespace=res.namespace)
        lease["metadata"] = meta
        try:
            if message.operation == names.OP_INSERT:
                meta.pop("resourceVersion", None)
                try:
                    result = await self.client.create("leases", lease, namespace=res.namespace)
                except AlreadyExists:
                    current = await self.client.get("leases", res.name, namespace=res.namespace)
                    meta["resourceVersion"] = _meta(current).get("resourceVersion")
                    result = await self.client.update("leases", lease, namespace=res.namespace)
            else:
                try:
                    result = await self.client.update("leases", lease, namespace=res.namespace)
                except Conflict:
                    result = await self.client.patch("leases", res.name,
                                                     {"spec": lease.get("spec") or {}},
                                                     namespace=res.namespace)
        except K8sError as e:
            self._reply(message, {"Object": None, "Err": {"ErrStatus": _status_of(e)}})
            return
        self._reply(message, {"Object": result, "Err": None},
                    _meta(result).get("resourceVersion", ""))

    # pods -----------------------------------------------------------------------------------

    async def _pod_status(self, message, res):
        content = message.content_object()
        items = content if isinstance(content, list) else [content]
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("Status"), dict):
                continue
            name = item.get("Name") or res.name
            if name:
                await self._apply_pod_status(res.node, res.namespace, name, item.get("UID"),
                                             item["Status"])
        if message.sync:
            self._reply(message, "OK")

    async def _apply_pod_status(self, node, namespace, name, uid, status):
        pods = self.informers.get("pods")
        current = pods.get(name, namespace) if pods is not None and pods.has_synced else None
        if current is None:  # not in the cache (yet): ask the API
            try:
                current = await self.client.get("pods", name, namespace=namespace)
            except NotFound:
                self._pod_gone(node, namespace, name, uid)
                return None
        if uid and _meta(current).get("uid") and _meta(current)["uid"] != uid:
            self._pod_gone(node, namespace, name, uid)
            return None
        status = dict(status)
        old = {c.get("type"): c for c in (current.get("status") or {}).get("conditions") or ()}
        conditions = []
        for condition in status.get("conditions") or ():
            condition = dict(condition)
            previous = old.get(condition.get("type"))
            if previous and previous.get("status") == condition.get("status") \
                    and previous.get("lastTransitionTime"):
                condition["lastTransitionTime"] = previous["lastTransitionTime"]
            conditions.append(condition)
        if conditions:
            status["conditions"] = conditions
        if (current.get("status") or {}).get("startTime"):
            status["startTime"] = current["status"]["startTime"]
        try:
            updated = await self.client.patch_status("pods", name, {"status": status},
                                                     namespace=namespace)
        except NotFound:
            self._pod_gone(node, namespace, name, uid)
            return None
        except K8sError as e:
            self.log.warn("status of pod {ns}/{name}: {error}", ns=namespace, name=name,
                          error=e, log_event="edgecontroller_status_failed")
            return None
        self._finalize_if_done(updated)
        return updated

    def _pod_gone(self, node, namespace, name, uid):
        """The edge reports a pod the API no longer has: tell it to delete the pod."""
        self.log.info("pod {ns}/{name} on {node} no longer exists: deleting it on the edge",
                      ns=namespace, name=name, node=node, log_event="edgecontroller_orphan_pod")
        self.send_delete(node, names.RES_POD, namespace, name, uid)

    async def _pod_patch(self, message, res):
        patch = message.content_object()
        if not isinstance(patch, dict):
            self._reply(message, {"Object": None, "Err": {"ErrStatus": {
                "status": "Failure", "reason": "BadRequest", "code": 400,
                "message": "pod patch is not a JSON object"}}})
            return
        uid = _meta(patch).get("uid")
        try:
            current = await self.client.get("pods", res.name, namespace=res.namespace)
            if uid and _meta(current).get("uid") != uid:
                raise NotFound("not in the informer cache", code=404)
            pod = await self.client.patch_status("pods", res.name,
                                                 {"status": patch.get("status") or {}},
                                                 namespace=res.namespace,
                                                 patch_type="strategic")
        except NotFound:
            self._pod_gone(res.node, res.namespace, res.name, uid)
            self._reply(message, {"Object": None, "Err": {"ErrStatus": not_found_status(
                "pods", res.name)}})
            return
        except K8sError as e:
            self._reply(message, {"Object": None, "Err": {"ErrStatus": _status_of(e)}})
            return
        self._finalize_if_done(pod)
        self._reply(message, {"Object": _with_kind("pods", pod), "Err": None},
                    _meta(pod).get("resourceVersion", ""))

    async def _edge_deleted_pod(self, message, res):
        """v1.15: the edge confirms a terminating pod's containers are gone by deleting it
        with grace 0 and a uid precondition."""
        options = message.content_object()
        uid = ((options or {}).get("preconditions") or {}).get("uid") \
            if isinstance(options, dict) else None
        try:
            await self.client.delete("pods", res.name, namespace=res.namespace,
                                     grace_period_seconds=0,
                                     preconditions={"uid": uid} if uid else None)
        except NotFound:
            pass
        except K8sError as e:
            self._reply(message, {"ErrStatus": _status_of(e)})
            return
        self._reply(message, "OK")

    def _finalize_if_done(self, pod):
        """Delete (grace 0) a terminating pod whose containers the edge reports gone, or
        whose node does not exist any more."""
        meta = _meta(pod)
        if not meta.get("deletionTimestamp"):
            return
        status = pod.get("status") or {}
        statuses = status.get("containerStatuses") or []
        finished = status.get("phase") in ("Succeeded", "Failed") or (
            statuses and all("terminated" in (s.get("state") or {}) for s in statuses))
        node = (pod.get("spec") or {}).get("nodeName")
        nodes = self.informers.get("nodes")
        node_gone = bool(node) and nodes is not None and nodes.has_synced \
            and nodes.get(node) is None and node not in self.connected
        if not (finished or node_gone):
            return
        d = self.client.delete("pods", meta.get("name"), namespace=meta.get("namespace"),
                               grace_period_seconds=0, preconditions={"uid": meta.get("uid")})
        d.addErrback(lambda f: f.trap(NotFound, Conflict))
        d.addErrback(lambda f: self.log.failure("finalizing pod {name}", f,
                                                name=meta.get("name")))

    # -- node connection events ---------------------------------------------------------------

    def _connection_event(self, message):
        node = node_of(message.resource)
        if not node:
            return None
        call = self._grace.pop(node, None)
        if call is not None and call.active():
            call.cancel()
        if message.operation == names.OP_CONNECTED:
            self.connected.add(node)
            for listener in self._connect_listeners:
                listener(node)
            return None
        self.connected.discard(node)
        self._grace[node] = self.clock.callLater(self.node_update_frequency,
                                                 self._mark_unknown, node)
        return None

    def _mark_unknown(self, node):
        """After the grace: every condition Unknown, as the node lifecycle controller does
        for a kubelet that stopped posting status. Pods are left alone."""
        self._grace.pop(node, None)
        if node in self.connected or not self._ready:
            return None

        async def mark():
            try:
                current = await self.client.get("nodes", node)
            except NotFound:
                return
            now = self._now()
            conditions = []
            for condition in (current.get("status") or {}).get("conditions") or [
                    {"type": "Ready"}]:
                condition = dict(condition)
                if condition.get("status") != "Unknown":
                    condition["lastTransitionTime"] = now
                condition.update(status="Unknown", reason="NodeStatusUnknown",
                                 message="Kubelet stopped posting node status.")
                conditions.append(condition)
            await self.client.patch_status("nodes", node, {"status": {"conditions": conditions}})
            self.log.info("edge node {node} is disconnected: conditions Unknown (pods keep "
                          "running on the edge)", node=node,
                          log_event="edgecontroller_node_unknown")
        d = defer.Deferred.fromCoroutine(mark())
        d.addErrback(lambda f: self.log.failure("marking {node} Unknown", f, node=node))
        return d
