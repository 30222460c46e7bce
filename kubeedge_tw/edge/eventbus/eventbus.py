"""EventBus (KubeEdge module ``eventbus``, group ``bus``): the edge's MQTT bridge.

What it does, with the KubeEdge behaviour each part reproduces (reference 4.1, 3.3):

* **Brokers** by ``modules.eventBus.mqttMode``: 0 = the internal broker only
  (:class:`~.broker.MQTTBroker` on ``mqttServerInternal``), 1 = both, 2 = an external broker
  only (:class:`~.external.ExternalMQTTClient` to ``mqttServerExternal``). Both are
  *MQTT links* (:class:`IMQTTLink`): ``subscribe``, ``publish`` and an ``on_message``
  callback.
* **Inbound**: the KubeEdge topics (:data:`~.topics.SUBSCRIBED_TOPICS`) are subscribed on
  every link. A message on ``$hw/events/device/...`` or ``$hw/events/node/...`` goes to the
  ``twin`` group, anything else to the cloud (module ``websocket``), as a message with
  ``source="bus"``, ``group="user"``, ``operation="response"``, the URL-safe base64 of the
  topic as resource (``SYS/dis/upload_records`` literal) and the payload as string content.
  A payload that is not UTF-8 goes to the twin as bytes (which answers the mapper with an
  error result) and is not sent to the cloud; both are logged.
* **Outbound**, from other modules: ``publish`` (resource = topic; content bytes, string,
  or any JSON value, which is serialised), ``subscribe`` (resource = topic filter, added
  on every link and kept across reconnects), ``message`` (publishes the JSON of
  ``content.message`` on ``content.message.topic``) and ``get_result`` on ``auth_info``
  (published on ``$hw/events/node/<node>/authInfo/get/result``). Published with
  ``mqttQOS`` and ``mqttRetain``. A bad request is logged and dropped; the module goes on.
"""

import json
import uuid
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.logger import Logger

from kubeedge_tw.common import names
from kubeedge_tw.common.bus import UnknownModule
from kubeedge_tw.common.message import new_message
from kubeedge_tw.common.module import Module, QueueFull
from kubeedge_tw.edge.edgehub.hub import edge_node_name
from kubeedge_tw.edge.eventbus.broker import MQTTBroker
from kubeedge_tw.edge.eventbus.external import ExternalMQTTClient
from kubeedge_tw.edge.eventbus.interfaces import IMQTTLink
from kubeedge_tw.edge.eventbus.topics import (
    SUBSCRIBED_TOPICS, goes_to_twin, topic_filter_error, topic_name_error, topic_to_resource)

__all__ = ["EventBus", "IMQTTLink", "BUS_SOURCE", "payload_bytes", "create_eventbus",
           "parse_mqtt_url"]

#: ``route.source`` of messages EventBus makes from MQTT (KubeEdge's ``modules.BusGroup``).
BUS_SOURCE = "bus"
#: The one auth-info resource EventBus publishes a ``get_result`` for.
AUTH_INFO_RESOURCE = "auth_info"


def payload_bytes(content):
    """The MQTT payload for a bus message's content: bytes as they are, text as UTF-8,
    None as empty, any other JSON value as compact JSON."""
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    if isinstance(content, str):
        return content.encode("utf-8")
    if content is None:
        return b""
    return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class EventBus(Module):
    """The ``eventbus`` module over one or two :class:`IMQTTLink` s."""

    log = Logger()
    name = names.EVENTBUS
    group = names.BUS_GROUP

    def __init__(self, clock, *, node_name, links, qos=0, retain=False,
                 topics=SUBSCRIBED_TOPICS):
        super().__init__(clock)
        if not links:
            raise ValueError("EventBus needs at least one MQTT link")
        self.node_name = node_name
        self.links = list(links)
        self.qos = qos
        self.retain = retain
        self.topics = list(topics)
        for link in self.links:
            link.on_message = self.mqtt_message
        #: Counters an operator (or a test) can read.
        self.counters = {"to_twin": 0, "to_cloud": 0, "published": 0, "bad_payload": 0,
                         "undeliverable": 0, "bad_request": 0}

    # -- MQTT -> bus ------------------------------------------------------------------------

    def mqtt_message(self, topic, payload):
        """Route one received MQTT message (reference 4.1)."""
        payload = bytes(payload)
        try:
            content = payload.decode("utf-8")
        except UnicodeDecodeError as e:
            content = None
            self.counters["bad_payload"] += 1
            self.log.warn("MQTT payload on {topic} is not UTF-8 (byte {pos}){what}",
                          topic=topic, pos=e.start,
                          what="; passed to twin as bytes" if goes_to_twin(topic)
                          else "; not sent to the cloud", log_event="eventbus_bad_payload")
        resource = topic_to_resource(topic)
        if goes_to_twin(topic):
            message = new_message(BUS_SOURCE, names.USER_GROUP, names.OP_RESPONSE, resource,
                                  payload if content is None else content, clock=self.clock)
            if self._deliver(lambda: self.bus.send_to_group(names.TWIN_GROUP, message),
                             topic, "twin"):
                self.counters["to_twin"] += 1
            return
        if content is None:
            return
        message = new_message(BUS_SOURCE, names.USER_GROUP, names.OP_RESPONSE, resource,
                              content, clock=self.clock)
        if self._deliver(lambda: self.bus.send(names.EDGEHUB, message), topic, "cloud"):
            self.counters["to_cloud"] += 1

    def _deliver(self, send, topic, where):
        if self.bus is None:
            return False
        try:
            send()
            return True
        except (UnknownModule, QueueFull) as e:
            self.counters["undeliverable"] += 1
            self.log.warn("MQTT message on {topic} not delivered to {where}: {reason}",
                          topic=topic, where=where, reason=str(e),
                          log_event="eventbus_undeliverable")
            return False

    # -- bus -> MQTT ------------------------------------------------------------------------

    def handle(self, message):
        """Carry out a ``publish``, ``subscribe``, ``message`` or ``get_result`` request."""
        operation = message.operation
        if operation == names.OP_PUBLISH:
            self.publish(message.resource, payload_bytes(message.content), message)
        elif operation == names.OP_SUBSCRIBE:
            self.subscribe(message.resource, message)
        elif operation == names.OP_MESSAGE:
            self._message(message)
        elif operation == names.OP_GET_RESULT:
            if message.resource != AUTH_INFO_RESOURCE:
                self.log.info("ignored get_result on {resource}: only auth_info is "
                              "published", resource=message.resource)
                return
            topic = "$hw/events/node/{}/authInfo/get/result".format(self.node_name)
            self.publish(topic, payload_bytes(message.content_object()), message)
        else:
            self._bad(message, "unknown operation {!r}".format(operation))

    def publish(self, topic, payload, request=None):
        """Publish ``payload`` on every link, with ``mqttQOS`` and ``mqttRetain``."""
        error = topic_name_error(topic)
        if error is not None:
            self._bad(request, error)
            return
        for link in self.links:
            try:
                link.publish(topic, payload, self.qos, self.retain)
            except ValueError as e:
                self._bad(request, str(e))
                return
        self.counters["published"] += 1

    def subscribe(self, topic_filter, request=None):
        """Subscribe ``topic_filter`` on every link, now and after reconnects."""
        error = topic_filter_error(topic_filter)
        if error is not None:
            self._bad(request, error)
            return
        if topic_filter not in self.topics:
            self.topics.append(topic_filter)
        for link in self.links:
            link.subscribe(topic_filter, 1)
        self.log.info("subscribed MQTT topic {topic}", topic=topic_filter,
                      log_event="eventbus_subscribed")

    def _message(self, request):
        body = request.content_object()
        inner = body.get("message") if isinstance(body, dict) else None
        topic = inner.get("topic") if isinstance(inner, dict) else None
        if not isinstance(topic, str):
            self._bad(request, "content must be {\"message\": {\"topic\": <string>, ...}}")
            return
        self.publish(topic, payload_bytes(inner), request)

    def _bad(self, request, reason):
        self.counters["bad_request"] += 1
        self.log.warn("eventbus refused {what} from {source}: {reason}",
                      what=request.describe() if request is not None else "a request",
                      source=(request.source if request is not None else None) or "-",
                      reason=reason, log_event="eventbus_bad_request")

    # -- service ----------------------------------------------------------------------------

    def startService(self):
        """Start the links and subscribe the KubeEdge topics on each."""
        super().startService()
        for link in self.links:
            for topic_filter in self.topics:
                link.subscribe(topic_filter, 1)
            link.startService()

    def stopService(self):
        """Stop taking messages, then stop the links (reverse order)."""
        module_stopped = super().stopService()
        stops = [defer.maybeDeferred(link.stopService) for link in reversed(self.links)]
        d = defer.gatherResults([module_stopped] + stops, consumeErrors=True)
        d.addCallback(lambda _: None)
        return d


def parse_mqtt_url(url):
    """``tcp://HOST:PORT`` (IPv6 as ``[addr]``) -> ``(host, port)``; ``ValueError`` else."""
    parts = urlsplit(url)
    if parts.scheme != "tcp" or not parts.hostname:
        raise ValueError("MQTT address must be tcp://HOST:PORT, got {!r}".format(url))
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        raise ValueError("MQTT address {!r} has no valid port".format(url))
    return parts.hostname, port


def create_eventbus(core, config):
    """Build :class:`EventBus` from ``config.modules.eventBus`` on ``core.clock`` (the
    reactor): the internal broker for ``mqttMode`` 0 and 1, the external client for 1 and
    2. The node name is ``modules.edged.hostnameOverride`` (or the host name)."""
    section = config.modules.eventBus
    node_name = edge_node_name(config)
    links = []
    if section.mqttMode in (0, 1):
        host, port = parse_mqtt_url(section.mqttServerInternal)
        links.append(MQTTBroker(core.clock, host=host, port=port,
                                session_queue_size=section.mqttSessionQueueSize))
    if section.mqttMode in (1, 2):
        host, port = parse_mqtt_url(section.mqttServerExternal)
        # KubeEdge's hub clients are "hub-client-sub/pub-<time>"; one client does both here,
        # named after the node so that operators can tell edges apart on a shared broker.
        client_id = "hub-client-{}-{}".format(node_name, uuid.uuid4().hex[:8])
        links.append(ExternalMQTTClient(core.clock, host=host, port=port, client_id=client_id,
                                        queue_size=section.mqttSessionQueueSize))
    return EventBus(core.clock, node_name=node_name, links=links, qos=section.mqttQOS,
                    retain=section.mqttRetain)
