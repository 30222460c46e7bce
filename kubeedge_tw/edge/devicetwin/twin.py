"""DeviceTwin (KubeEdge module ``twin``, group ``twin``): devices, attributes and twins.

What it does, with the KubeEdge behaviour each part reproduces (reference 4.1-4.4, 2.9):

* **From mappers** (MQTT via EventBus: ``source="bus"``, resource = base64url of the
  topic; the device id is topic level 3, or level 4 after a v1.17 namespace level):
  ``.../twin/update`` -> version bump, persist, ``update/result`` then ``update/document``
  then ``update/delta`` (only when a desired value differs from the reported one), then
  ``device/<id>/twin/edge_updated`` to the cloud; ``.../twin/get`` -> ``get/result``;
  ``.../twin/cloud_updated`` -> a cloud-style sync; ``.../state/update`` -> persist state
  and ``last_online``, ``state/update/result``, ``device/<id>/state`` to the cloud;
  ``$hw/events/node/<node>/membership/get`` -> ``membership/get/result``.
* **From the cloud** (group ``twin``): ``membership`` update (added/removed devices, each
  stored with its attributes and twins in one transaction and announced on
  ``$hw/events/node/<node>/membership/updated``), ``membership/detail`` (the full list:
  missing devices added, others removed), ``device/<id>/twin/cloud_updated`` (the version
  rules of :mod:`.logic`; a rejected sync sends the edge's value back in
  ``edge_updated``), ``device/<id>`` op ``updated`` (attributes ->
  ``$hw/events/device/<id>/updated``).
* **Errors** go to the request's ``.../result`` topic as ``{event_id, timestamp, code,
  reason}`` with the request's ``event_id``: 400 for a payload that is not JSON, has no
  ``twin``, a bad key, value or type; 404 for an unknown device; 500 when the database
  write failed after its retries. Nothing stored changes on an error; the module goes on.
* **The cloud link**: on ``cloud_connected`` (EdgeHub's ``node/connection`` broadcast)
  after being disconnected, ``membership/detail`` is requested (content the JSON string of
  reference 2.9). Every message sent to the cloud is kept in a **confirm map** until a
  message whose ``parent_msg_id`` names it arrives, and is sent again every
  ``resend_interval`` (60 s) while connected, and at once on reconnect. A newer report
  for the same device (and the same twins) replaces an unconfirmed older one; one that
  covers only some of its twins takes those out of it, so that no resend brings an older
  value back. EdgeHub also keeps these reports while the cloud is unreachable.

Everything is answered from the in-memory copy (loaded from sqlite at start); writes go
through :class:`~.store.DeviceStore`, and what is published for a request is published
after its rows are committed, in request order.

Reports to the cloud use ``source="twin"`` and ``group="twin"``; KubeEdge's own twin puts
``resource`` in ``route.group`` there, but peers route on ``route.source`` only
(reference 8).
"""

import time

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from kubeedge_tw.common import names
from kubeedge_tw.common.bus import UnknownModule
from kubeedge_tw.common.core import SetupError
from kubeedge_tw.common.message import new_message, now_ms
from kubeedge_tw.common.module import Module, QueueFull
from kubeedge_tw.edge.devicetwin.logic import REST, SYNC, build_delta, deal_attrs, deal_twins
from kubeedge_tw.edge.devicetwin.model import (
    BAD_REQUEST, DEVICE_STATES, INTERNAL_ERROR, NOT_FOUND, TYPE_DELETED, Device,
    PayloadError, dumps, error_result, membership_device_json,
    new_event_id, parse_attributes, parse_base, parse_device_list, parse_object,
    parse_twin_update)
from kubeedge_tw.edge.devicetwin.store import (
    DeviceStore, StoreError, attr_row, delete_attr_txn, delete_device_txn, open_pool,
    prepare_database, put_attr_txn, put_twin_txn, twin_row, update_device_txn)
from kubeedge_tw.edge.edgehub.hub import edge_node_name
from kubeedge_tw.edge.eventbus.topics import resource_to_topic

__all__ = ["DeviceTwin", "create_devicetwin", "parse_topic", "DEVICE_PREFIX", "NODE_PREFIX",
           "CLOUD_GROUP", "DETAIL_RESOURCE"]

DEVICE_PREFIX = "$hw/events/device/"
NODE_PREFIX = "$hw/events/node/"
#: ``route.group`` of reports to the cloud (see module docstring).
CLOUD_GROUP = names.WIRE_GROUP_TWIN
DETAIL_RESOURCE = "membership/detail"
#: Source of EdgeHub's connection broadcast.
EDGEHUB_SOURCE = "edgehub"
BUS_SOURCE = "bus"

# Actions of a mapper topic (KubeEdge EventActionMap).
TWIN_UPDATE, TWIN_GET, TWIN_SYNC = "twin/update", "twin/get", "twin/cloud_updated"
STATE_UPDATE, STATE_GET, MEMBERSHIP_GET = "state/update", "state/get", "membership/get"
_DEVICE_ACTIONS = frozenset({TWIN_UPDATE, TWIN_GET, TWIN_SYNC, STATE_UPDATE, STATE_GET})


def parse_topic(topic):
    """``(action, ref, device_or_node_id)`` for a topic DeviceTwin handles, else None.

    ``ref`` is what result topics put after the prefix: ``<id>``, or ``<namespace>/<id>``
    for the v1.17 form ``$hw/events/device/<namespace>/<id>/...``."""
    if topic.startswith(DEVICE_PREFIX):
        parts = topic[len(DEVICE_PREFIX):].split("/")
        if len(parts) >= 2 and parts[0] and "/".join(parts[1:]) in _DEVICE_ACTIONS:
            return "/".join(parts[1:]), parts[0], parts[0]
        if (len(parts) >= 3 and parts[0] and parts[1]
                and "/".join(parts[2:]) in _DEVICE_ACTIONS):
            return "/".join(parts[2:]), parts[0] + "/" + parts[1], parts[1]
        return None
    if topic.startswith(NODE_PREFIX):
        parts = topic[len(NODE_PREFIX):].split("/")
        if len(parts) == 3 and parts[0] and parts[1:] == ["membership", "get"]:
            return MEMBERSHIP_GET, parts[0], parts[0]
    return None


class _Unconfirmed:
    """A message sent to the cloud and not yet confirmed."""

    __slots__ = ("message", "kind", "device", "twins")

    def __init__(self, message, kind, device=None, twins=frozenset()):
        self.message = message
        self.kind = kind
        self.device = device
        self.twins = twins

    def superseded_by(self, newer):
        """Whether ``newer`` makes this one pointless to resend."""
        if self.kind != newer.kind or self.device != newer.device:
            return False
        return self.kind != "edge_updated" or self.twins <= newer.twins

    def without_twins_of(self, newer):
        """This report without the twins ``newer`` reports again (same device), or None
        when the two share no twin. The message id is kept, so that the cloud's confirm
        still names it."""
        if (self.kind != "edge_updated" or newer.kind != self.kind
                or self.device != newer.device or not self.twins & newer.twins):
            return None
        twins = self.twins - newer.twins
        content = dict(self.message.content)
        content["twin"] = {name: value for name, value in content["twin"].items()
                           if name in twins}
        return _Unconfirmed(self.message.replace(content=content), self.kind, self.device,
                            twins)


class DeviceTwin(Module):
    """The ``twin`` module (see the module docstring)."""

    log = Logger()
    name = names.DEVICETWIN
    group = names.TWIN_GROUP

    def __init__(self, clock, *, node_name, store, resend_interval=60.0, confirm_limit=10000,
                 max_backlog=256, close_store=True):
        super().__init__(clock)
        self.node_name = node_name
        self.store = store
        self.resend_interval = resend_interval
        self.confirm_limit = confirm_limit
        self.max_backlog = max_backlog
        self.close_store = close_store
        #: device id -> Device, the working copy (KubeEdge's DeviceList).
        self.devices = {}
        #: msg_id -> _Unconfirmed, in send order (KubeEdge's ConfirmMap).
        self.unconfirmed = {}
        self.cloud_connected = False
        self._loaded = False
        self._load_failed = None
        self._load_waiters = []
        self._resend = None
        #: Counters an operator (or a test) can read.
        self.counters = {"published": 0, "to_cloud": 0, "resent": 0, "errors": 0,
                         "confirmed": 0}

    # -- start-up -------------------------------------------------------------------------

    def startService(self):
        """Load the devices from sqlite, start the resend timer, then take messages."""
        super().startService()
        self._resend = LoopingCall(self.resend_unconfirmed)
        self._resend.clock = self.clock
        self._resend.start(self.resend_interval, now=False)
        d = self.store.load_all()
        d.addCallbacks(self._have_devices, self._load_error)

    def _have_devices(self, devices):
        self.devices = {device.id: device for device in devices}
        self._loaded = True
        self.log.info("device twin loaded {count} devices", count=len(self.devices),
                      log_event="twin_loaded")
        waiters, self._load_waiters = self._load_waiters, []
        for d in waiters:
            d.callback(None)

    def _load_error(self, failure):
        self._load_failed = failure
        self.log.failure("device twin could not load its devices from the database", failure,
                         log_event="twin_load_failed")
        waiters, self._load_waiters = self._load_waiters, []
        for d in waiters:
            d.errback(failure)

    def _wait_loaded(self):
        if self._load_failed is not None:
            return defer.fail(self._load_failed)
        d = defer.Deferred()
        self._load_waiters.append(d)
        return d

    # -- dispatch -------------------------------------------------------------------------

    def handle(self, message):
        """Classify ``message`` (KubeEdge ``classifyMsg``) and deal with it."""
        if not self._loaded:
            d = self._wait_loaded()
            d.addCallback(lambda _: self._dispatch(message))
            return d
        return self._dispatch(message)

    def _dispatch(self, message):
        if message.parent_msg_id:
            self._confirm(message.parent_msg_id)
        source = message.source
        if source == BUS_SOURCE:
            return self._from_mqtt(message)
        if source == EDGEHUB_SOURCE:
            if message.resource == names.RES_NODE_CONNECTION:
                self._lifecycle(message.content)
            return None
        return self._from_cloud(message)

    def _from_mqtt(self, message):
        try:
            topic = resource_to_topic(message.resource)
        except ValueError as e:
            self.log.warn("dropped a bus message: {reason}", reason=str(e),
                          log_event="twin_bad_resource")
            return None
        parsed = parse_topic(topic)
        if parsed is None:
            self.log.info("no twin action for MQTT topic {topic}; ignored", topic=topic,
                          log_event="twin_unknown_topic")
            return None
        action, ref, ident = parsed
        payload = message.content
        if action == TWIN_UPDATE:
            return self.twin_update(ref, ident, payload)
        if action == TWIN_GET:
            return self.twin_get(ref, ident, payload)
        if action == TWIN_SYNC:
            return self.twin_sync(ident, payload, ref=ref)
        if action == STATE_UPDATE:
            return self.state_update(ref, ident, payload)
        if action == MEMBERSHIP_GET:
            return self.membership_get(payload)
        self.log.debug("ignored {action} for device {device}", action=action, device=ident)
        return None

    def _from_cloud(self, message):
        resource = message.resource or ""
        parts = resource.split("/")
        if DETAIL_RESOURCE in resource:
            content = message.content_object()
            if isinstance(content, dict) and "devices" in content:
                return self.membership_detail(content)
            return None
        if parts[-1:] == ["membership"]:
            return self.membership_update(message.content_object())
        if len(parts) >= 4 and parts[-4] == names.RES_DEVICE and parts[-2:] == [
                "twin", "cloud_updated"]:
            return self.twin_sync(parts[-3], message.content_object())
        if (names.OP_UPDATED in message.operation and len(parts) >= 2
                and parts[-2] == names.RES_DEVICE):
            return self.device_updated(parts[-1], message.content_object())
        if not message.is_response:
            self.log.info("twin ignored {what} from {source}", what=message.describe(),
                          source=message.source or "-", log_event="twin_unhandled")
        return None

    # -- publishing -------------------------------------------------------------------------

    def _now(self):
        return now_ms(self.clock)

    def publish(self, topic, payload):
        """Ask EventBus to publish ``payload`` (a JSON value) on ``topic``."""
        message = new_message(names.DEVICETWIN, names.BUS_GROUP, names.OP_PUBLISH, topic,
                              dumps(payload), clock=self.clock)
        try:
            self.send(names.EVENTBUS, message)
        except (UnknownModule, QueueFull) as e:
            self.log.warn("cannot publish on {topic}: {reason}", topic=topic, reason=str(e),
                          log_event="twin_publish_failed")
            return
        self.counters["published"] += 1

    def _publish_error(self, topic, error, event_id=None):
        self.counters["errors"] += 1
        event_id = error.event_id if event_id is None else event_id
        self.log.info("twin request on {topic} refused ({code}): {reason}", topic=topic,
                      code=error.code, reason=error.reason, log_event="twin_request_refused")
        self.publish(topic, error_result(event_id, error.code, error.reason, self._now()))

    def _device_topic(self, ref, suffix):
        return "{}{}/{}".format(DEVICE_PREFIX, ref, suffix)

    def _after_commit(self, operations, on_commit, on_failure=None):
        """Write ``operations``; run ``on_commit`` after the commit (in request order), or
        ``on_failure(failure)``. Returns the write's Deferred when the store is behind (so
        the module stops taking messages for a while), else None."""
        d = self.store.write(operations)

        def committed(_):
            on_commit()

        def failed(failure):
            if on_failure is not None:
                return on_failure(failure)
            self.log.failure("device twin write failed", failure,
                             log_event="twin_write_failed")
        d.addCallbacks(committed, failed)
        d.addErrback(lambda f: self.log.failure("device twin publish failed", f,
                                                log_event="twin_after_commit_failed"))
        return d if self.store.backlog > self.max_backlog else None

    def _reload(self, device_id):
        """Replace the working copy of a device by what sqlite holds (after a failed
        write)."""
        def reloaded(device):
            if device is None:
                self.devices.pop(device_id, None)
            else:
                self.devices[device_id] = device
        d = self.store.load_device(device_id)
        d.addCallbacks(reloaded, lambda f: self.log.failure(
            "cannot reload device {device}", f, device=device_id,
            log_event="twin_reload_failed"))
        return d

    # -- the cloud link -----------------------------------------------------------------------

    def _lifecycle(self, content):
        if content == names.CLOUD_CONNECTED:
            if not self.cloud_connected:
                self.cloud_connected = True
                self.request_detail()
                self.resend_unconfirmed(skip_kind="detail")
        elif content == names.CLOUD_DISCONNECTED:
            self.cloud_connected = False

    def request_detail(self):
        """Ask the cloud for this node's device list (KubeEdge ``detailRequest``)."""
        content = dumps({"event_type": "group_membership_event", "event_id": "123",
                         "group_id": self.node_name, "operation": "detail",
                         "timestamp": self._now()})
        self.to_cloud(names.OP_GET, DETAIL_RESOURCE, content, "detail")

    def to_cloud(self, operation, resource, content, kind, device=None, twins=frozenset()):
        """Send a message to the cloud through EdgeHub and keep it until confirmed."""
        message = new_message(names.DEVICETWIN, CLOUD_GROUP, operation, resource, content,
                              clock=self.clock)
        entry = _Unconfirmed(message, kind, device, frozenset(twins))
        for msg_id, old in list(self.unconfirmed.items()):
            if old.superseded_by(entry):
                del self.unconfirmed[msg_id]
                continue
            # An older report that shares twins with this one is resent without them:
            # else a resend (every resend_interval, or after a reconnect) would put the
            # older values back in the cloud after this one was written there.
            trimmed = old.without_twins_of(entry)
            if trimmed is not None:
                self.unconfirmed[msg_id] = trimmed
        if len(self.unconfirmed) >= self.confirm_limit:
            oldest = next(iter(self.unconfirmed))
            self.log.warn("confirm map full ({limit}): gave up on {what}",
                          limit=self.confirm_limit,
                          what=self.unconfirmed.pop(oldest).message.describe(),
                          log_event="twin_confirm_map_full")
        self.unconfirmed[message.msg_id] = entry
        self.counters["to_cloud"] += 1
        self._send_cloud(message)
        return message

    def _send_cloud(self, message):
        try:
            self.send(names.EDGEHUB, message)
        except (UnknownModule, QueueFull) as e:
            self.log.warn("cannot send {what} to the cloud now: {reason}",
                          what=message.describe(), reason=str(e),
                          log_event="twin_cloud_send_failed")

    def _confirm(self, msg_id):
        if self.unconfirmed.pop(msg_id, None) is not None:
            self.counters["confirmed"] += 1

    def resend_unconfirmed(self, skip_kind=None):
        """Send every unconfirmed message again (while the cloud is connected)."""
        if not self.cloud_connected:
            return
        for entry in list(self.unconfirmed.values()):
            if entry.kind == skip_kind:
                continue
            self.counters["resent"] += 1
            self._send_cloud(entry.message)

    def _edge_updated(self, device_id, sync):
        self.to_cloud(names.OP_UPDATE, "device/{}/twin/edge_updated".format(device_id),
                      {"event_id": new_event_id(), "timestamp": self._now(), "twin": sync},
                      "edge_updated", device_id, sync.keys())

    # -- twins ------------------------------------------------------------------------------

    def twin_update(self, ref, device_id, payload):
        """A mapper's twin update (``.../twin/update``)."""
        topic = self._device_topic(ref, "twin/update/result")
        event_id = ""
        try:
            obj = parse_object(payload)
            event_id, _ = parse_base(obj)
            event_id, patches = parse_twin_update(obj)
            device = self.devices.get(device_id)
            if device is None:
                raise PayloadError("Update rejected due to the device {} is not existed".format(
                    device_id), NOT_FOUND, event_id)
        except PayloadError as e:
            self._publish_error(topic, e, e.event_id or event_id)
            return None
        now = self._now()
        outcome = deal_twins(device.twins, patches, REST, now)
        if outcome.error is not None:
            code, reason = outcome.error
            self._publish_error(topic, PayloadError(reason, code, event_id))
            return None
        device.twins = outcome.twins
        operations = [(put_twin_txn, (twin_row(device_id, name, outcome.twins[name]),))
                      for name in outcome.changed]

        def committed():
            result = {k: v for k, v in outcome.result.items()
                      if v is None or (v.get("metadata") or {}).get("type") != TYPE_DELETED}
            self.publish(topic, {"event_id": event_id, "timestamp": now, "twin": result})
            self._after_twin_change(ref, device_id, event_id, now, outcome)

        def failed(failure):
            self._reload(device_id)
            self._publish_error(topic, PayloadError(str(failure.value), INTERNAL_ERROR,
                                                    event_id))
        return self._after_commit(operations, committed, failed)

    def _after_twin_change(self, ref, device_id, event_id, now, outcome):
        """Publish document and delta, and report to the cloud (KubeEdge order)."""
        if outcome.document:
            self.publish(self._device_topic(ref, "twin/update/document"),
                         {"event_id": event_id, "timestamp": now, "twin": outcome.document})
        self._publish_delta(ref, device_id)
        if outcome.sync:
            self._edge_updated(device_id, outcome.sync)

    def _publish_delta(self, ref, device_id):
        device = self.devices.get(device_id)
        if device is None:
            return
        twins, delta = build_delta(device.twins)
        if delta:
            self.publish(self._device_topic(ref, "twin/update/delta"),
                         {"event_id": new_event_id(), "timestamp": self._now(),
                          "twin": twins, "delta": delta})

    def twin_sync(self, device_id, payload, ref=None):
        """A desired-value update from the cloud (``device/<id>/twin/cloud_updated``)."""
        ref = ref or device_id
        try:
            device = self.devices.get(device_id)
            if device is None:
                raise PayloadError("device {} is not a member of this node".format(
                    device_id), NOT_FOUND)
            event_id, patches = parse_twin_update(parse_object(payload, "cloud twin update"))
        except PayloadError as e:
            self.counters["errors"] += 1
            self.log.warn("cloud twin update for device {device} refused ({code}): {reason}",
                          device=device_id, code=e.code, reason=e.reason,
                          log_event="twin_sync_refused")
            return None
        return self._sync(device, ref, event_id, patches)

    def _sync(self, device, ref, event_id, patches, extra_operations=(), before=None):
        now = self._now()
        outcome = deal_twins(device.twins, patches, SYNC, now)
        device.twins = outcome.twins
        operations = list(extra_operations) + [
            (put_twin_txn, (twin_row(device.id, name, outcome.twins[name]),))
            for name in outcome.changed]

        def committed():
            if before is not None:
                before()
            self._after_twin_change(ref, device.id, event_id, now, outcome)

        def failed(failure):
            self._reload(device.id)
            self.log.failure("cloud update of device {device} not stored", failure,
                             device=device.id, log_event="twin_sync_not_stored")
        return self._after_commit(operations, committed, failed)

    def twin_get(self, ref, device_id, payload):
        """A mapper's twin get (``.../twin/get``)."""
        topic = self._device_topic(ref, "twin/get/result")
        try:
            event_id, _ = parse_base(parse_object(payload))
            device = self.devices.get(device_id)
            if device is None:
                raise PayloadError("Device {} not found while getting twin".format(device_id),
                                   NOT_FOUND, event_id)
        except PayloadError as e:
            self._publish_error(topic, e)
            return None
        now = self._now()
        twins = {name: twin.to_json(versions=False) for name, twin in device.twins.items()
                 if not twin.deleted}
        return self._after_commit([], lambda: self.publish(
            topic, {"event_id": event_id, "timestamp": now, "twin": twins}))

    # -- device state and attributes ----------------------------------------------------------

    def state_update(self, ref, device_id, payload):
        """A mapper's state report (``.../state/update``)."""
        topic = self._device_topic(ref, "state/update/result")
        try:
            obj = parse_object(payload)
            event_id, _ = parse_base(obj)
            device = self.devices.get(device_id)
            if device is None:
                raise PayloadError("device {} not found".format(device_id), NOT_FOUND,
                                   event_id)
            state = obj.get("state")
            if state not in DEVICE_STATES:
                raise PayloadError("state must be one of {}, got {}".format(
                    ", ".join(DEVICE_STATES), dumps(state)[:80]), BAD_REQUEST, event_id)
        except PayloadError as e:
            self._publish_error(topic, e)
            return None
        last_online = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.clock.seconds()))
        device.state, device.last_online = state, last_online
        now = self._now()
        body = {"event_id": event_id or new_event_id(), "timestamp": now, "device": {
            k: v for k, v in (("name", device.name), ("state", state),
                              ("last_online", last_online)) if v}}

        def committed():
            self.publish(topic, body)
            self.to_cloud(names.OP_UPDATE, "device/{}/state".format(device_id), dumps(body),
                          "state", device_id)

        def failed(failure):
            self._reload(device_id)
            self._publish_error(topic, PayloadError(str(failure.value), INTERNAL_ERROR,
                                                    event_id))
        return self._after_commit(
            [(update_device_txn, (device_id, state, last_online))], committed, failed)

    def device_updated(self, device_id, content):
        """Attribute changes from the cloud (``device/<id>`` op ``updated``)."""
        device = self.devices.get(device_id)
        try:
            if device is None:
                raise PayloadError("device {} is not a member of this node".format(device_id),
                                   NOT_FOUND)
            obj = parse_object(content, "device update")
            event_id, _ = parse_base(obj)
            patches = parse_attributes(obj.get("attributes"), event_id=event_id)
        except PayloadError as e:
            self.counters["errors"] += 1
            self.log.warn("cloud attribute update for device {device} refused ({code}): "
                          "{reason}", device=device_id, code=e.code, reason=e.reason,
                          log_event="twin_attr_update_refused")
            return None
        return self._update_attributes(device, event_id, patches, detail=False)

    def _update_attributes(self, device, event_id, patches, detail):
        outcome = deal_attrs(device.attributes, patches, detail)
        if not outcome.changed and not outcome.deleted:
            return None
        device.attributes = outcome.attributes
        operations = [(put_attr_txn, (attr_row(device.id, n, outcome.attributes[n]),))
                      for n in outcome.changed]
        operations += [(delete_attr_txn, (device.id, n)) for n in outcome.deleted]
        now = self._now()

        def committed():
            self.publish(self._device_topic(device.id, "updated"),
                         {"event_id": event_id, "timestamp": now,
                          "attributes": outcome.result})
        return self._after_commit(operations, committed,
                                  lambda failure: self._reload(device.id))

    # -- membership ---------------------------------------------------------------------------

    def _membership_topic(self, suffix):
        return "{}{}/membership/{}".format(NODE_PREFIX, self.node_name, suffix)

    def membership_get(self, payload):
        """A mapper asks for this node's devices (``.../membership/get``)."""
        topic = self._membership_topic("get/result")
        try:
            event_id, _ = parse_base(parse_object(payload))
        except PayloadError as e:
            self._publish_error(topic, e)
            return None
        now = self._now()
        devices = [device.summary_json() for device in self.devices.values()]
        return self._after_commit([], lambda: self.publish(
            topic, {"event_id": event_id, "timestamp": now, "devices": devices}))

    def membership_update(self, content):
        """Devices added to and removed from this node by the cloud."""
        try:
            obj = parse_object(content, "membership update")
            added = parse_device_list(obj, "added_devices")
            removed = parse_device_list(obj, "removed_devices")
        except PayloadError as e:
            self.counters["errors"] += 1
            self.log.warn("membership update refused: {reason}", reason=e.reason,
                          log_event="twin_membership_refused")
            return None
        waits = [self._add_device(spec) for spec in added]
        waits += [self._remove_device(spec.id, membership_device_json(spec))
                  for spec in removed]
        return self._throttle(waits)

    def membership_detail(self, content):
        """The cloud's full device list for this node: add what is missing, remove the
        rest (KubeEdge ``dealMembershipDetail``)."""
        try:
            devices = parse_device_list(parse_object(content, "membership detail"), "devices")
        except PayloadError as e:
            self.counters["errors"] += 1
            self.log.warn("membership detail refused: {reason}", reason=e.reason,
                          log_event="twin_membership_refused")
            return None
        listed = {spec.id for spec in devices}
        waits = [self._add_device(spec) for spec in devices]
        waits += [self._remove_device(device_id, {"id": device_id})
                  for device_id in list(self.devices) if device_id not in listed]
        self.log.info("membership detail: {count} devices from the cloud",
                      count=len(devices), log_event="twin_membership_detail")
        return self._throttle(waits)

    def _throttle(self, waits):
        waits = [d for d in waits if d is not None]
        if not waits:
            return None
        return defer.gatherResults(waits, consumeErrors=True).addErrback(lambda _: None)

    def _add_device(self, spec):
        existing = self.devices.get(spec.id)
        if existing is not None:
            wait_attrs = self._update_attributes(existing, "", spec.attributes, detail=True)
            wait_twins = self._sync(existing, spec.id, "", spec.twins)
            return self._throttle([wait_attrs, wait_twins])
        device = Device(spec.id, spec.name, spec.description, spec.state, spec.last_online)
        device.attributes = deal_attrs({}, spec.attributes, detail=True).attributes
        self.devices[spec.id] = device
        announcement = membership_device_json(spec)

        def announce():
            self.log.info("device {device} added to node {node}", device=spec.id,
                          node=self.node_name, log_event="twin_device_added")
            self.publish(self._membership_topic("updated"), {
                "event_id": new_event_id(), "timestamp": self._now(),
                "added_devices": [announcement], "removed_devices": None})
        # The device row, its attributes and its twins go in one transaction.
        outcome = deal_twins({}, spec.twins, SYNC, self._now())
        device.twins = outcome.twins
        operation = self.store.insert_device(device)
        now = self._now()

        def committed():
            announce()
            self._after_twin_change(device.id, device.id, "", now, outcome)

        def failed(failure):
            self._reload(device.id)
            self.log.failure("device {device} not stored", failure, device=device.id,
                             log_event="twin_device_not_stored")
        return self._after_commit([operation], committed, failed)

    def _remove_device(self, device_id, announcement):
        if self.devices.pop(device_id, None) is None:
            self.log.info("cannot remove device {device}: not a member", device=device_id,
                          log_event="twin_remove_unknown")
            return None

        def committed():
            self.log.info("device {device} removed from node {node}", device=device_id,
                          node=self.node_name, log_event="twin_device_removed")
            self.publish(self._membership_topic("updated"), {
                "event_id": new_event_id(), "timestamp": self._now(),
                "added_devices": None, "removed_devices": [announcement]})
        return self._after_commit([(delete_device_txn, (device_id,))], committed,
                                  lambda failure: self._reload(device_id))

    # -- service ----------------------------------------------------------------------------

    def stopService(self):
        """Stop the resend timer and taking messages; commit pending writes; close the
        store. The Deferred fires when all of that is done."""
        if self._resend is not None and self._resend.running:
            self._resend.stop()
        self._resend = None
        d = defer.maybeDeferred(super().stopService)
        if self.close_store:
            d.addCallback(lambda _: self.store.close())
        else:
            d.addCallback(lambda _: self.store.wait_idle())
        return d


def create_devicetwin(core, config):
    """Build :class:`DeviceTwin` on ``core.clock`` with its tables in the edge database
    (``database.dataSource``), created now; an unusable file is a ``SetupError``."""
    path = config.resolve_path(config.database.dataSource)
    try:
        prepare_database(path)
    except StoreError as e:
        raise SetupError(str(e)) from None
    store = DeviceStore(lambda: open_pool(path, core.clock), core.clock)
    return DeviceTwin(core.clock, node_name=edge_node_name(config), store=store)
