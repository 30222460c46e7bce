"""DeviceController (cloud module ``devicecontroller``): Device/DeviceModel objects to the
edge twins, and what the twins report back into the Device status (reference 1.2, 2.5,
2.9, 4.2, 4.3; KubeEdge ``cloud/pkg/devicecontroller`` for ``devices.kubeedge.io/v1alpha2``).

Downstream, from shared informers on ``devicemodels``, ``nodes`` and ``devices`` (the
device informer starts once models and nodes are listed, so the first membership carries
attributes and only valid devices):

* a Device bound to a node (``spec.nodeSelector.nodeSelectorTerms[0]
  .matchExpressions[0].values[0]``) goes to it as ``update`` on ``membership`` (group
  ``twin``) with ``added_devices``; deleting it, or moving it to another node, sends
  ``removed_devices`` (to the old node) — see :func:`.convert.edge_device` for the payload;
* a change of ``status.twins[].desired`` (value or type; twins removed become
  ``deleted`` tombstones) goes as ``update`` on ``device/<id>/twin/cloud_updated`` with
  ``expected_version.cloud`` = the Device's resourceVersion. Unlike KubeEdge (which
  compares the whole status and so echoes every reported write back to the edge), only
  desired changes are sent;
* a change of the attributes the model gives a device (model created late, changed, or
  a new ``deviceModelRef``) goes as ``updated`` on ``device/<id>``;
* ConfigMap ``device-profile-config-<node>`` (in the devices' namespace, key
  ``deviceProfile.json``, :func:`.convert.device_profile`) is created, updated and
  deleted with the node's devices; writes per ConfigMap are serialised.

Invalid Devices. The embedded API server refuses (422) a Device whose DeviceModel or
node does not exist, or whose ``status.twins`` name properties its model does not
declare; a real cluster without an admission webhook for Devices stores them. Each Device
is therefore checked whenever it, its model or its node changes, and what is wrong is
told with a ``Warning`` Event on the Device (source ``devicecontroller``, ``kubectl
describe device`` / ``kubectl get events``):

* ``DeviceModelNotFound`` (``deviceModelRef "m" not found in namespace ns``) and
  ``NodeNotFound`` (``node "n" (spec.nodeSelector) not found``): the device is not sent
  to any edge, or is withdrawn (``removed_devices``) from the edge that had it;
* ``UnknownTwinProperty``: the device is sent without those twins.

When the cause goes (the model or the node is created, the Device edited) the device is
delivered as any other. An Event is recorded when a problem is found, not again while
the same problem persists across later changes of the Device; the
:class:`~kubeedge_tw.cloud.controlplane.events.EventSink` it goes through folds a
problem that comes back into the same Event (``count``) and rate-limits per Device, as
client-go's recorder does.

Upstream (cloudhub routes every message whose ``route.source`` is ``twin`` here, with
``node/<node>/`` prepended):

* ``get`` on ``membership/detail``: answered (op ``response``, ``parent_msg_id`` = the
  request) with ``{"event_id","timestamp","devices":[...]}``, every device of the node
  with attributes and desired twins; held until both informers have synced, because an
  empty answer would make the edge drop all its devices;
* ``update`` on ``device/<id>/twin/edge_updated``: reported values are merge-patched into
  ``status.twins[i].reported`` (``value``, ``metadata{timestamp,type}``, strings), desired
  kept, with a resourceVersion precondition and retries on conflict;
* ``update`` on ``device/<id>/state``: recorded as ``status.state`` and
  ``status.lastOnlineTime`` (the fields later KubeEdge Device APIs use; v1alpha2 has no
  state field, our CRD keeps unknown status fields);
* both are confirmed, once written (or when the device does not exist, since retrying
  cannot help), with KubeEdge's confirm message: op ``response``, resource
  ``node/<node>/twin``, content ``"OK"``; the edge stops resending on it.

Status writes use the ``status`` subresource when the CRD has one and fall back to the
main resource (KubeEdge v1alpha2's CRD has none; it patches the Device itself).
"""

from twisted.internet import defer
from twisted.logger import Logger

from kubeedge_tw.cloud.controlplane.events import WARNING, EventSink
from kubeedge_tw.cloud.devicecontroller import convert
from kubeedge_tw.cloud.k8s import AlreadyExists, Conflict, K8sError, NotFound
from kubeedge_tw.common import names
from kubeedge_tw.common.message import new_message, new_msg_id, new_response, now_ms
from kubeedge_tw.common.module import Module
from kubeedge_tw.common.resource import node_of

__all__ = ["DeviceController", "WRITE_RETRIES", "EVENT_COMPONENT", "MODEL_NOT_FOUND",
           "NODE_NOT_FOUND", "UNKNOWN_TWIN_PROPERTY"]

#: Attempts for a status write that meets a concurrent change (409).
WRITE_RETRIES = 5
#: ``source.component`` of the Events this controller records.
EVENT_COMPONENT = "devicecontroller"
#: Event reasons for invalid Devices.
MODEL_NOT_FOUND = "DeviceModelNotFound"
NODE_NOT_FOUND = "NodeNotFound"
UNKNOWN_TWIN_PROPERTY = "UnknownTwinProperty"
_SUCCESS = "OK"


def _meta(obj):
    return (obj or {}).get("metadata") or {}


class DeviceController(Module):
    """See the module docstring."""

    log = Logger()
    name = names.DEVICECONTROLLER
    group = names.DEVICECONTROLLER_GROUP
    concurrency = 16

    def __init__(self, clock, kube, events=None):
        """``events``: the :class:`~kubeedge_tw.cloud.controlplane.events.EventSink` the
        Warning events go through, started and stopped by its owner; without one the
        controller has its own, started when the Kubernetes client is ready and stopped
        with the controller."""
        super().__init__(clock)
        self.kube = kube
        self._own_events = events is None
        self.events = EventSink(clock, kube) if events is None else events
        self.recorder = self.events.recorder(EVENT_COMPONENT)
        self.informers = {}
        #: "ns/name" -> what was last sent for the device: node, desired, attributes.
        #: Holds exactly the devices delivered to an edge.
        self._sent = {}
        #: "ns/name" -> the (reason, message) problems last found for the device.
        self._problems = {}
        self._locks = {}              # "ns/name" of a device -> DeferredLock (status writes)
        self._profiles = {}           # (ns, node) -> [running Deferred, rerun wanted]
        self._status_subresource = None   # learnt on the first status write
        self._ready = False
        self._ready_waiters = []
        self._work = set()            # API work in flight (cancelled on stop)

    # -- start --------------------------------------------------------------------------------

    def startService(self):
        super().startService()
        d = self.kube.when_ready()
        d.addCallbacks(self._wire, lambda f: self.log.error(
            "devicecontroller is idle: no Kubernetes API ({error})",
            error=f.getErrorMessage(), log_event="devicecontroller_no_api"))

    def _wire(self, kube):
        if self._own_events:
            self.events.start()
        models = self.informers["devicemodels"] = kube.informer("devicemodels")
        models.add_handler(self._model_changed, lambda old, new: self._model_changed(new),
                           self._model_changed)
        # The node informer is the one EdgeController reads too (shared).
        nodes = self.informers["nodes"] = kube.informer("nodes")
        nodes.add_handler(self._node_changed, None, self._node_changed)
        d = defer.gatherResults([models.wait_synced(), nodes.wait_synced()],
                                consumeErrors=True)
        d.addErrback(lambda f: f.value.subFailure if f.check(defer.FirstError) else f)

        def devices_next(_):
            devices = self.informers["devices"] = kube.informer("devices")
            devices.add_handler(self._device_added, self._device_updated,
                                self._device_deleted)
            if devices.has_synced:
                # Shared and listed already: its adds went by before our handler.
                for device in devices.list():
                    self._device_added(device)
            return devices.wait_synced()

        def ready(_):
            self._ready = True
            waiters, self._ready_waiters = self._ready_waiters, []
            for waiter in waiters:
                waiter.callback(None)
            self.log.info("devicecontroller watching devices, devicemodels and nodes",
                          log_event="devicecontroller_ready")
        d.addCallback(devices_next)
        d.addCallback(ready)
        d.addErrback(lambda f: f.trap(defer.CancelledError))

    def when_ready(self):
        """A Deferred firing once both informers have synced."""
        if self._ready:
            return defer.succeed(None)
        d = defer.Deferred(self._ready_waiters.remove)
        self._ready_waiters.append(d)
        return d

    def stopService(self):
        """Stop; API requests still in flight are cancelled (the client closes with the
        cloud's KubeContext, which stops alongside). An unconfirmed report is resent by
        the edge, and the profile ConfigMap is rewritten at the next start."""
        waiters, self._ready_waiters = self._ready_waiters, []
        for waiter in waiters:
            waiter.cancel()
        for d in list(self._work):
            d.cancel()
        stopped = [super().stopService()]
        if self._own_events:
            stopped.append(self.events.stop())
        return defer.gatherResults(stopped, consumeErrors=True)

    def _track(self, d):
        """Keep ``d`` (API work) until it fires, so that stopping can cancel it."""
        self._work.add(d)
        d.addErrback(lambda f: f.trap(defer.CancelledError))

        def done(result):
            self._work.discard(d)
            return result
        d.addBoth(done)
        return d

    @property
    def client(self):
        return self.kube.client

    # -- lookups ------------------------------------------------------------------------------

    def model_of(self, device):
        """The cached DeviceModel a Device references (same namespace), or None."""
        informer = self.informers.get("devicemodels")
        ref = ((device.get("spec") or {}).get("deviceModelRef") or {}).get("name")
        if informer is None or not ref:
            return None
        return informer.get(ref, _meta(device).get("namespace") or "default")

    def devices_on(self, node):
        """The cached Devices delivered to ``node`` (bound to it and valid)."""
        informer = self.informers.get("devices")
        if informer is None:
            return []
        return [d for d in informer.list()
                if (self._sent.get(convert.device_key(d)) or {}).get("node") == node]

    def problems(self, device):
        """What is wrong with ``device``: ``(deliverable, [(reason, message), ...])``.

        Not deliverable: no DeviceModel, or a node selector naming a node that does not
        exist. Twins its model does not declare are a problem, but the device is still
        delivered without them."""
        namespace = _meta(device).get("namespace") or "default"
        ref = ((device.get("spec") or {}).get("deviceModelRef") or {}).get("name")
        model = self.model_of(device)
        found = []
        if model is None:
            found.append((MODEL_NOT_FOUND, 'deviceModelRef "{}" not found in namespace {}'
                          .format(ref, namespace) if ref else "spec.deviceModelRef.name "
                          "is not set"))
        node = convert.device_node(device)
        nodes = self.informers.get("nodes")
        if node and nodes is not None and nodes.get(node) is None:
            found.append((NODE_NOT_FOUND, 'node "{}" (spec.nodeSelector) not found'.format(
                node)))
        deliverable = not found
        unknown = convert.unknown_twins(device, model) if model is not None else []
        if unknown:
            found.append((UNKNOWN_TWIN_PROPERTY, "{} in status.twins {} of DeviceModel "
                          '"{}": not sent to the edge'.format(
                              ", ".join('"{}"'.format(n) for n in unknown),
                              "is not a property" if len(unknown) == 1
                              else "are not properties", ref)))
        return deliverable, found

    def _find_device(self, node, device_id):
        """The cached Device named ``device_id`` on ``node`` (any namespace)."""
        informer = self.informers.get("devices")
        candidates = [d for d in (informer.list() if informer is not None else ())
                      if _meta(d).get("name") == device_id]
        on_node = [d for d in candidates if convert.device_node(d) == node]
        found = on_node or candidates
        return found[0] if found else None

    # -- downstream ---------------------------------------------------------------------------

    def _now(self):
        return now_ms(self.clock)

    def _send(self, node, resource, content, operation=names.OP_UPDATE):
        message = new_message(names.DEVICECONTROLLER, names.WIRE_GROUP_TWIN, operation,
                              "node/{}/{}".format(node, resource), content, clock=self.clock)
        try:
            self.send(names.CLOUDHUB, message)
        except Exception as e:
            self.log.warn("cannot hand {what} to cloudhub: {error}", what=message.describe(),
                          error=e, log_event="devicecontroller_send_failed")
            return None
        return message

    def _membership(self, node, added=(), removed=()):
        return self._send(node, names.RES_MEMBERSHIP, {
            "event_id": new_msg_id(), "timestamp": self._now(),
            "added_devices": list(added), "removed_devices": list(removed)})

    def _record(self, device, node):
        model = self.model_of(device)
        self._sent[convert.device_key(device)] = {
            "node": node, "desired": convert.desired_twins(device, model),
            "attributes": convert.attributes_from_model(model)}

    def _report(self, device, found):
        """Record a Warning event for each problem of ``device`` not found before."""
        key = convert.device_key(device)
        before = self._problems.get(key, frozenset())
        now = frozenset(found)
        if now:
            self._problems[key] = now
        else:
            self._problems.pop(key, None)
        for reason, message in sorted(now - before):
            self.log.warn("device {key}: {reason}: {message}", key=key, reason=reason,
                          message=message, log_event="devicecontroller_invalid_device")
            self.recorder.event(device, WARNING, reason, message)
        if before and not now:
            self.log.info("device {key} is valid again", key=key,
                          log_event="devicecontroller_device_valid")

    def _sync(self, device, old=None, added=False, refresh=False):
        """Bring the edges in line with ``device`` (``old``: its previous state): check
        it, withdraw it from a node that should no longer have it, deliver it to the one
        that should, or send what changed. ``refresh``: rewrite the profile ConfigMap
        even when the device itself did not change (its model did)."""
        key = convert.device_key(device)
        node = convert.device_node(device)
        deliverable, found = self.problems(device)
        self._report(device, found)
        target = node if deliverable else ""
        sent = self._sent.get(key)
        if sent is not None and sent["node"] != target:
            gone = old if old is not None else device
            del self._sent[key]
            self._membership(sent["node"], removed=[convert.edge_device(
                gone, self.model_of(gone), self._now())])
            self._refresh_profile(gone, sent["node"])
            sent = None
        if not target:
            if added and not node:
                self.log.info("device {key} has no node selector; not sent", key=key,
                              log_event="devicecontroller_no_node")
            return
        if sent is None:
            self._record(device, node)
            self._membership(node, added=[convert.edge_device(
                device, self.model_of(device), self._now())])
            self._refresh_profile(device, node)
            return
        model = self.model_of(device)
        desired = convert.desired_twins(device, model)
        before = sent["desired"]
        changed = sorted(n for n in desired if before.get(n) != desired[n])
        removed = sorted(n for n in before if n not in desired)
        if changed or removed:
            self._send(node, "device/{}/twin/cloud_updated".format(_meta(device).get("name")),
                       {"event_id": new_msg_id(), "timestamp": self._now(),
                        "twin": convert.cloud_twins(device, model, changed, self._now(),
                                                    removed)})
        self._send_attributes(device, node, sent)
        sent["desired"] = desired
        if refresh or changed or removed:
            self._refresh_profile(device, node)

    def _device_added(self, device):
        self._sync(device, added=True)

    def _device_deleted(self, device):
        key = convert.device_key(device)
        sent = self._sent.pop(key, None)
        self._problems.pop(key, None)
        self._locks.pop(key, None)
        if sent is not None:
            self._membership(sent["node"], removed=[convert.edge_device(
                device, self.model_of(device), self._now())])
            self._refresh_profile(device, sent["node"])

    def _device_updated(self, old, new):
        self._sync(new, old=old,
                   refresh=(old.get("spec") or {}) != (new.get("spec") or {}))

    def _send_attributes(self, device, node, sent):
        """Tell ``node`` about attribute changes (``device/<id>`` op ``updated``)."""
        attributes = convert.attributes_from_model(self.model_of(device))
        if attributes == sent["attributes"]:
            return
        patch = dict(attributes)
        for name in sent["attributes"]:
            patch.setdefault(name, None)   # gone from the model: removed on the edge
        sent["attributes"] = attributes
        self._send(node, "device/{}".format(_meta(device).get("name")), {
            "event_id": new_msg_id(), "timestamp": self._now(), "attributes": patch},
            operation=names.OP_UPDATED)

    def _model_changed(self, model):
        """A DeviceModel came, changed or went: its devices are checked again (delivered,
        withdrawn, or sent new attributes and twins) and their profiles rewritten."""
        informer = self.informers.get("devices")
        if informer is None:
            return
        namespace = _meta(model).get("namespace") or "default"
        name = _meta(model).get("name")
        for device in informer.list():
            if (_meta(device).get("namespace") or "default") != namespace or (
                    (device.get("spec") or {}).get("deviceModelRef") or {}).get("name") != name:
                continue
            self._sync(device, refresh=True)

    def _node_changed(self, node):
        """A Node came or went: the devices bound to it are checked again."""
        informer = self.informers.get("devices")
        if informer is None:
            return
        name = _meta(node).get("name")
        for device in informer.list():
            if convert.device_node(device) == name:
                self._sync(device)

    # -- the per-node device profile ConfigMap ------------------------------------------------

    def _refresh_profile(self, device, node):
        namespace = _meta(device).get("namespace") or "default"
        key = (namespace, node)
        entry = self._profiles.get(key)
        if entry is not None:
            entry[1] = True          # running: run once more when it is done
            return entry[0]
        entry = self._profiles[key] = [None, False]

        async def run():
            while True:
                entry[1] = False
                try:
                    await self._write_profile(namespace, node)
                except K8sError as e:
                    self.log.warn("device profile for {node} in {ns}: {error}", node=node,
                                  ns=namespace, error=e,
                                  log_event="devicecontroller_profile_failed")
                if not entry[1]:
                    break
        d = self._track(defer.Deferred.fromCoroutine(run()))
        d.addErrback(lambda f: self.log.failure("device profile for {node}", f, node=node))
        d.addBoth(lambda _: self._profiles.pop(key, None))
        if key in self._profiles:
            entry[0] = d
        return d

    async def _write_profile(self, namespace, node):
        name = convert.profile_name(node)
        devices = [d for d in self.devices_on(node)
                   if (_meta(d).get("namespace") or "default") == namespace]
        models = {}
        for device in devices:
            model = self.model_of(device)
            if model is not None:
                models[_meta(model).get("name")] = model
        for _ in range(WRITE_RETRIES):
            try:
                current = await self.client.get("configmaps", name, namespace=namespace)
            except NotFound:
                current = None
            if not devices:
                if current is not None:
                    try:
                        await self.client.delete("configmaps", name, namespace=namespace)
                    except NotFound:
                        pass
                    self.log.info("deleted {name} in {ns}", name=name, ns=namespace,
                                  log_event="devicecontroller_profile_deleted")
                return
            data = {convert.PROFILE_KEY: convert.device_profile(devices, models)}
            try:
                if current is None:
                    await self.client.create("configmaps", {
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name, "namespace": namespace},
                        "data": data}, namespace=namespace)
                elif (current.get("data") or {}) != data:
                    current = dict(current, data=data)
                    await self.client.update("configmaps", current, namespace=namespace)
                return
            except (AlreadyExists, Conflict):
                continue
        self.log.warn("device profile {name} kept changing; gave up", name=name,
                      log_event="devicecontroller_profile_conflict")

    # -- messages from the edges (via cloudhub) -----------------------------------------------

    def handle(self, message):
        if message.source == names.CLOUDHUB:
            return None     # connected/disconnected: the edge asks for its detail itself
        if message.is_response:
            return None
        node = node_of(message.resource or "")
        parts = (message.resource or "").split("/")[2:]
        if not node:
            self.log.info("devicecontroller ignores {what}", what=message.describe(),
                          log_event="devicecontroller_ignored")
            return None
        if parts == ["membership", "detail"]:
            handler = self._membership_detail
        elif len(parts) == 4 and parts[0] == names.RES_DEVICE and parts[2:] == [
                "twin", "edge_updated"]:
            handler = self._edge_updated
        elif len(parts) == 3 and parts[0] == names.RES_DEVICE and parts[2] == "state":
            handler = self._state
        else:
            self.log.info("devicecontroller has no handler for {what}",
                          what=message.describe(), log_event="devicecontroller_unhandled")
            return None

        async def run():
            await self.when_ready()
            await handler(message, node, parts)
        d = self._track(defer.Deferred.fromCoroutine(run()))
        d.addErrback(lambda f: self.log.failure("devicecontroller failed on {what}", f,
                                                what=message.describe()))
        return d

    def _reply(self, request, resource, content):
        reply = new_response(request, content, source=names.DEVICECONTROLLER,
                             clock=self.clock).replace(group=names.WIRE_GROUP_TWIN,
                                                       resource=resource)
        try:
            self.send(names.CLOUDHUB, reply)
        except Exception as e:
            self.log.warn("cannot hand {what} to cloudhub: {error}", what=reply.describe(),
                          error=e, log_event="devicecontroller_send_failed")

    def _confirm(self, request, node):
        """KubeEdge's confirm message for an edge report (``node/<node>/twin``, "OK")."""
        self._reply(request, "node/{}/{}".format(node, names.RES_TWIN), _SUCCESS)

    async def _membership_detail(self, message, node, parts):
        request = message.content_object()
        event_id = request.get("event_id") if isinstance(request, dict) else None
        now = self._now()
        devices = [convert.edge_device(d, self.model_of(d), now)
                   for d in sorted(self.devices_on(node), key=lambda d: _meta(d).get("name"))]
        self._reply(message, message.resource, {
            "event_id": event_id if isinstance(event_id, str) else new_msg_id(),
            "timestamp": now, "devices": devices})

    async def _edge_updated(self, message, node, parts):
        content = message.content_object()
        twins = content.get("twin") if isinstance(content, dict) else None
        if not isinstance(twins, dict):
            self.log.warn("edge_updated from {node} without a twin map: {what}", node=node,
                          what=message.describe(), log_event="devicecontroller_bad_report")
            self._confirm(message, node)   # resending the same garbage cannot help
            return

        def change(device):
            new_twins, changed = convert.apply_reported(device, twins)
            return {"twins": new_twins} if changed else None
        if await self._write_status(node, parts[1], change):
            self._confirm(message, node)

    async def _state(self, message, node, parts):
        content = message.content_object()
        device = content.get("device") if isinstance(content, dict) else None
        state = device.get("state") if isinstance(device, dict) else None
        if not isinstance(state, str) or not state:
            self.log.warn("device state from {node} without a state: {what}", node=node,
                          what=message.describe(), log_event="devicecontroller_bad_report")
            self._confirm(message, node)
            return

        def change(current):
            status = current.get("status") or {}
            patch = {"state": state}
            if device.get("last_online"):
                patch["lastOnlineTime"] = device["last_online"]
            if all(status.get(k) == v for k, v in patch.items()):
                return None
            return patch
        if await self._write_status(node, parts[1], change):
            self._confirm(message, node)

    async def _write_status(self, node, device_id, change):
        """Merge-patch ``change(device)`` (a partial status, or None for nothing) into the
        Device's status, serialised per device, with a resourceVersion precondition and
        retries on conflict. True when done or pointless (device gone), False to let the
        edge resend."""
        cached = self._find_device(node, device_id)
        if cached is None:
            self.log.info("report for unknown device {device} from {node}; dropped",
                          device=device_id, node=node, log_event="devicecontroller_unknown")
            return True
        key = convert.device_key(cached)
        namespace = _meta(cached).get("namespace") or "default"
        lock = self._locks.setdefault(key, defer.DeferredLock())
        await lock.acquire()
        try:
            for _ in range(WRITE_RETRIES):
                try:
                    current = await self.client.get("devices", device_id, namespace=namespace)
                except NotFound:
                    return True
                status = change(current)
                if status is None:
                    return True
                patch = {"metadata": {"resourceVersion": _meta(current).get(
                    "resourceVersion")}, "status": status}
                try:
                    await self._patch_status(device_id, namespace, patch)
                    return True
                except Conflict:
                    continue
                except NotFound:
                    return True
            self.log.warn("status of device {device} kept changing; the edge will resend",
                          device=device_id, log_event="devicecontroller_status_conflict")
            return False
        except K8sError as e:
            self.log.warn("status of device {device}: {error}", device=device_id, error=e,
                          log_event="devicecontroller_status_failed")
            return False
        finally:
            lock.release()

    async def _patch_status(self, name, namespace, patch):
        if self._status_subresource is not False:
            try:
                result = await self.client.patch_status("devices", name, patch,
                                                        namespace=namespace)
                self._status_subresource = True
                return result
            except NotFound:
                if self._status_subresource:
                    raise
                # No status subresource (KubeEdge's v1alpha2 CRD), or the device is gone:
                # the main resource tells which.
                self._status_subresource = False
        return await self.client.patch("devices", name, patch, namespace=namespace)
