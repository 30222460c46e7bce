"""CloudHub (cloud module ``cloudhub``): the TLS websocket server edges dial.

What it does, and the KubeEdge behaviour each part reproduces:

* **Identity** — the node id comes from the ``node_id`` header (any case, as Go's
  ``Node_id``) or else from the ``/<project_id>/<node_id>/events`` path (v1.0 edges,
  reference 2.2). The client certificate (required and verified against the CA by the TLS
  layer) must name that node in its CN or a DNS SAN, else HTTP 403 at upgrade;
  certificates naming no such node pass only with ``allowAnyNodeCert``.
* **One connection per node** — a new connection replaces the old one, which is closed
  with a reason. ``nodeLimit`` is enforced with HTTP 429 ("too many Nodes connected",
  reference 2.4).
* **Keepalive** — the edge's ``keepalive`` message resets a per-node deadline of
  ``keepaliveInterval``; when it passes the node is disconnected, unless the hub itself
  has paused reading from that edge (then the deadline starts again). Keepalives are never
  forwarded. Websocket pings (``autoPingInterval``) also detect half-open TCP
  connections within two intervals.
* **Routing** (reference 2.5) — inbound resources get ``node/<id>/`` prepended and go to
  the ``devicecontroller`` group when ``route.source`` is ``twin``, else to
  ``edgecontroller``; replies to a ``send_sync`` go back through the bus. Outbound
  messages (from controllers, ``node/<id>/...``) lose the prefix and go to that node's
  :class:`~kubeedge_tw.cloud.cloudhub.session.NodeSession`.
* **Events** (reference 2.8) — ``connected``/``disconnected`` on ``node/<id>`` to the
  controllers, content the JSON string ``{"event_type", "timestamp", "client_id"}``.
* **Bad input** — a frame that is not a message, is larger than ``maxMessageSize`` or
  has an unknown operation is answered with an ``error`` message (when its ``msg_id``
  could be read) and logged; ten bad frames in a row close the connection with 1008.
* **Scale** (thousands of nodes on one reactor) — one :class:`~.session.AckTimer` holds
  every session's ACK deadlines; the :class:`~.encoding.SharedContentEncoder` serialises
  the content of a message sent to many nodes once; an optional
  :class:`~.longlived.LongLivedFreezer` keeps connection objects out of full garbage
  collections.
"""

import collections
import json
import re

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from kubeedge_tw.cloud.cloudhub.encoding import SharedContentEncoder
from kubeedge_tw.cloud.cloudhub.session import (
    ACK_INTERVAL, ACK_MAX_SENDS, DEFAULT_QUEUE_SIZE, DEFAULT_WINDOW, AckTimer, NodeSession)
from kubeedge_tw.common import names
from kubeedge_tw.common.message import MessageError, decode, new_error, new_message
from kubeedge_tw.common.module import Module
from kubeedge_tw.common.resource import node_of, prepend_node, strip_node, valid_node_name

__all__ = ["CloudHub", "HubProtocol", "MAX_BAD_FRAMES"]

#: Consecutive invalid frames after which a connection is closed with 1008.
MAX_BAD_FRAMES = 10
#: Seconds between tries to hand held inbound messages to a busy controller.
BACKLOG_RETRY = 0.01
#: Inbound messages held per connection while reads are paused (frames already read).
INBOUND_BACKLOG = 10000
CLOSE_POLICY_VIOLATION = 1008
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001

_PATH = re.compile(r"^/([^/]+)/([^/]+)/events/?$")
_MSG_ID = re.compile(rb'"msg_id"\s*:\s*"([0-9A-Za-z_.:-]{1,64})"')


def node_from_request(request):
    """The node id an upgrade request claims: ``node_id`` header, else the URL path."""
    for header, value in request.headers.items():
        if header.lower().replace("-", "_") == "node_id" and value:
            return value.strip()
    match = _PATH.match(request.path or "")
    return match.group(2) if match else ""


def peer_certificate_names(transport):
    """The names (CN, DNS SANs) of the client certificate on a TLS transport."""
    from kubeedge_tw.common.pki import node_names_of
    cert = transport.getPeerCertificate() if hasattr(transport, "getPeerCertificate") else None
    if cert is None:
        return set()
    return node_names_of(cert.to_cryptography())


@implementer(IPushProducer)
class _SessionProducer:
    """Lets the transport pause and resume a node session's writes."""

    def __init__(self, session):
        self.session = session

    def pauseProducing(self):
        self.session.pause()

    def resumeProducing(self):
        self.session.resume()

    def stopProducing(self):
        self.session.pause()


class HubProtocol(WebSocketServerProtocol):
    """One edge's websocket; everything it sees is handed to the :class:`CloudHub`."""

    node = None
    session = None
    bad_frames = 0
    reading_paused = False
    backlog_call = None

    def __init__(self):
        super().__init__()
        #: Inbound messages waiting for room in a controller's inbox, in arrival order.
        self.backlog = collections.deque()

    def onConnect(self, request):
        self.node = self.factory.hub.authorize(request, self.transport)
        return None

    def onOpen(self):
        self.factory.hub.node_opened(self)

    def onMessage(self, payload, isBinary):
        self.factory.hub.frame_received(self, payload)

    def onAutoPingTimeout(self):
        """No pong in time: a dead peer, unless the hub paused reading this edge (its pong
        may be waiting unread); then the wait starts again."""
        if self.reading_paused and self.state == self.STATE_OPEN:
            self.autoPingTimeoutCall = self.factory.hub.clock.callLater(
                self.autoPingTimeout, self.onAutoPingTimeout)
            return
        super().onAutoPingTimeout()

    def onClose(self, wasClean, code, reason):
        if self.backlog_call is not None and self.backlog_call.active():
            # Deliver what was read before the close; nothing the edge sent is dropped.
            self.backlog_call.cancel()
            self.backlog_call = None
            self.factory.hub.flush_backlog(self)
        self.factory.hub.node_closed(self, code, reason)

    # Autobahn's Twisted adapter formats the arguments of a debug log line (click colour
    # codes, qualified names) on every read and every plain write, whether or not debug
    # logging is on: ~6 us each, about 5 % of the cloud's CPU in a fan-out to 10,000
    # nodes (bench/hub_bench.py). These two do what autobahn's do, without that line;
    # every other case (queued or chopped writes, handshake bytes, octet logging) still
    # goes through autobahn.

    def dataReceived(self, data):
        self._dataReceived(data)

    def sendData(self, data, sync=False, chopsize=None):
        if (chopsize or sync or self.send_queue or self.logOctets
                or self.state != self.STATE_OPEN):
            return super().sendData(data, sync, chopsize)
        self.transport.write(data)
        self.trafficStats.outgoingOctetsWireLevel += len(data)

    def write_message(self, message):
        """Send one message as a text frame (KubeEdge v1.2+ framing)."""
        self.sendMessage(self.factory.hub.encoder.encode(message), isBinary=False)

    def close_with(self, code, reason):
        """Start the closing handshake with any RFC 6455 code (autobahn's ``sendClose``
        accepts only 1000 and 3000-4999 from applications; 1001 and 1008 are ours to
        send too). The reason is cut to the 123 bytes a close frame allows."""
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8")[:123])


class CloudHub(Module):
    """The cloud end of the cloud-edge link; see the module docstring."""

    log = Logger()
    name = names.CLOUDHUB
    group = names.CLOUDHUB_GROUP
    queue_size = 10240

    def __init__(self, clock, *, listen, address="0.0.0.0", port=10000, node_limit=1000,
                 keepalive_interval=30, allow_any_node_cert=False,
                 max_message_size=8 * 1024 * 1024, cert_names=peer_certificate_names,
                 node_queue_size=DEFAULT_QUEUE_SIZE, window=DEFAULT_WINDOW,
                 ack_interval=ACK_INTERVAL, ack_max_sends=ACK_MAX_SENDS, ping=True,
                 handshake_timeout=30, inbound_backlog=INBOUND_BACKLOG, long_lived=None):
        super().__init__(clock)
        self._listen = listen
        self.address = address
        self.port = port
        self.node_limit = node_limit
        self.keepalive_interval = keepalive_interval
        self.allow_any_node_cert = allow_any_node_cert
        self.max_message_size = max_message_size
        self._cert_names = cert_names
        self.node_queue_size = node_queue_size
        self.window = window
        self.ack_interval = ack_interval
        self.ack_max_sends = ack_max_sends
        #: ACK deadlines of every node session, on one delayed call.
        self.ack_timer = AckTimer(clock, ack_interval)
        self.inbound_backlog = inbound_backlog
        #: A :class:`~kubeedge_tw.cloud.cloudhub.longlived.LongLivedFreezer` told about
        #: every connection that opens or closes (``create_cloudhub`` gives one), or None.
        self.long_lived = long_lived
        #: Encodes every outbound frame; content sent to many nodes is serialised once.
        self.encoder = SharedContentEncoder()
        self.listening_port = None
        self._sessions = {}      # node -> HubProtocol (the current connection)
        self._acked = {}         # node -> {object key: resourceVersion acknowledged}
        self._observers = []
        self.factory = WebSocketServerFactory()
        self.factory.protocol = HubProtocol
        self.factory.hub = self
        options = dict(
            # Autobahn buffers up to this; between maxMessageSize and it we still read
            # the msg_id to answer with an error, beyond it autobahn closes with 1009.
            maxMessagePayloadSize=2 * max_message_size,
            maxFramePayloadSize=2 * max_message_size,
            openHandshakeTimeout=handshake_timeout, closeHandshakeTimeout=5)
        if ping:
            options.update(autoPingInterval=keepalive_interval,
                           autoPingTimeout=keepalive_interval)
        self.factory.setProtocolOptions(**options)

    # -- what other cloud modules use ---------------------------------------------------------

    def add_observer(self, observer):
        """Call ``observer.node_acked(node, message, key)`` and
        ``observer.node_undelivered(node, message, reason)`` (either may be absent)."""
        self._observers.append(observer)

    def is_connected(self, node):
        """Whether ``node`` has a live connection."""
        return node in self._sessions

    def connected_nodes(self):
        """Names of the connected nodes."""
        return sorted(self._sessions)

    def session(self, node):
        """The :class:`NodeSession` of a connected node, or None."""
        proto = self._sessions.get(node)
        return proto.session if proto is not None else None

    def acked_versions(self, node):
        """``{"<type>/<ns>/<name>": resourceVersion}`` the node acknowledged, kept across
        reconnects so the EdgeController resyncs only what changed."""
        return dict(self._acked.get(node, {}))

    # -- service ------------------------------------------------------------------------------

    def startService(self):
        super().startService()
        d = self._listen(self.factory)
        d.addCallbacks(self._listening, self._listen_failed)
        return d

    def _listening(self, port):
        self.listening_port = port
        host = port.getHost()
        self.log.info("cloudhub listening on wss://{host}:{port} (node limit {limit}, "
                      "keepalive {keepalive}s)", host=host.host, port=host.port,
                      limit=self.node_limit, keepalive=self.keepalive_interval,
                      log_event="cloudhub_listening")
        return port

    def _listen_failed(self, failure):
        self.log.critical("cloudhub cannot listen on {address}:{port}: {error}",
                          address=self.address, port=self.port,
                          error=failure.getErrorMessage(), log_event="cloudhub_listen_failed")
        return failure

    @defer.inlineCallbacks
    def stopService(self):
        if self.listening_port is not None:
            port, self.listening_port = self.listening_port, None
            yield port.stopListening()
        closing = []
        for proto in list(self._sessions.values()):
            closing.append(proto.is_closed)
            proto.close_with(CLOSE_GOING_AWAY, "cloudhub stopping")
        # Close handshakes are bounded by closeHandshakeTimeout; wait for them.
        if closing:
            yield defer.DeferredList(closing)
        self.ack_timer.stop()
        if self.long_lived is not None:
            self.long_lived.stop()
        yield super().stopService()

    # -- the upgrade request ------------------------------------------------------------------

    def authorize(self, request, transport):
        """Decide on an upgrade request; return the node id or raise ConnectionDeny."""
        node = node_from_request(request)
        if not node:
            self._deny(request, 400, "no node id: send the node_id header or use the path "
                                     "/<project_id>/<node_id>/events")
        if not valid_node_name(node):
            self._deny(request, 400, "node id {!r} is not a valid node name".format(node[:80]))
        cert_names = self._cert_names(transport)
        if node not in cert_names and not self.allow_any_node_cert:
            self._deny(request, 403, "client certificate names {} but the connection claims "
                                     "node {!r}".format(sorted(cert_names) or "no node", node))
        if node not in self._sessions and len(self._sessions) >= self.node_limit:
            self._deny(request, 429, "too many Nodes connected (nodeLimit {})".format(
                self.node_limit))
        return node

    def _deny(self, request, code, reason):
        self.log.warn("cloudhub refused {peer}: HTTP {code} {reason}", peer=request.peer,
                      code=code, reason=reason, log_event="cloudhub_refused")
        raise ConnectionDeny(code, reason)

    # -- connection lifecycle -----------------------------------------------------------------

    def node_opened(self, proto):
        node = proto.node
        old = self._sessions.get(node)
        if old is not None:
            # Detach first so the old connection's close does not report a disconnect.
            self._retire(old, "replaced by a new connection")
            old.close_with(CLOSE_NORMAL, "replaced by a new connection from the same node")
        proto.session = NodeSession(
            node, self.clock, proto.write_message, self,
            keepalive_interval=self.keepalive_interval, queue_size=self.node_queue_size,
            window=self.window, ack_interval=self.ack_interval,
            ack_max_sends=self.ack_max_sends, ack_timer=self.ack_timer)
        if proto.transport is not None and hasattr(proto.transport, "registerProducer"):
            try:
                proto.transport.registerProducer(_SessionProducer(proto.session), True)
            except RuntimeError:
                pass  # a producer is already registered: the window still bounds us
        self._sessions[node] = proto
        self._acked.setdefault(node, {})
        if self.long_lived is not None:
            self.long_lived.opened(len(self._sessions))
        self.log.info("node {node} connected from {peer}", node=node, peer=proto.peer,
                      log_event="cloudhub_node_connected")
        self._publish_event(node, names.OP_CONNECTED)

    def node_closed(self, proto, code, reason):
        if self.long_lived is not None and proto.session is not None:
            self.long_lived.closed(len(self._sessions) - (
                self._sessions.get(proto.node) is proto))
        if proto.node is None or self._sessions.get(proto.node) is not proto:
            if proto.session is not None:
                proto.session.close("node connection closed")
            return
        del self._sessions[proto.node]
        proto.session.close("node disconnected")
        self.log.info("node {node} disconnected ({code} {reason})", node=proto.node,
                      code=code, reason=reason or "", log_event="cloudhub_node_disconnected")
        self._publish_event(proto.node, names.OP_DISCONNECTED)

    def _retire(self, proto, reason):
        if self._sessions.get(proto.node) is proto:
            del self._sessions[proto.node]
        if proto.session is not None:
            proto.session.close(reason)

    def _publish_event(self, node, operation):
        content = json.dumps({"event_type": operation, "timestamp": int(self.clock.seconds()),
                              "client_id": node}, separators=(",", ":"))
        event = new_message(names.CLOUDHUB, names.WIRE_GROUP_RESOURCE, operation,
                            "node/" + node, content, clock=self.clock)
        # Connection events are few and must never be lost (a lost "disconnected" would
        # leave a node shown Ready): they go past a full inbox.
        for group in (names.EDGECONTROLLER_GROUP, names.DEVICECONTROLLER_GROUP):
            for member in self.bus.group_members(group):
                member.enqueue(event, force=True)

    # -- session events -----------------------------------------------------------------------

    def session_expired(self, session):
        proto = self._sessions.get(session.node)
        if proto is None or proto.session is not session:
            return
        if proto.reading_paused:
            # The hub stopped reading this edge (busy controllers): its keepalives may be
            # waiting unread in the socket. Silence we caused is no sign of a dead edge;
            # the deadline starts again.
            session.keepalive()
            return
        self.log.warn("node {node} sent no keepalive for {interval}s: disconnecting",
                      node=session.node, interval=self.keepalive_interval,
                      log_event="cloudhub_keepalive_expired")
        self._retire(proto, "keepalive timeout")
        self.log.info("node {node} disconnected (keepalive timeout)", node=session.node,
                      log_event="cloudhub_node_disconnected")
        self._publish_event(session.node, names.OP_DISCONNECTED)
        proto.dropConnection(abort=True)

    def session_acked(self, session, message, key):
        if key is not None:
            versions = self._acked.setdefault(session.node, {})
            if message.operation == names.OP_DELETE:
                versions.pop(key, None)
            else:
                versions[key] = message.resource_version
        for observer in self._observers:
            if hasattr(observer, "node_acked"):
                observer.node_acked(session.node, message, key)

    def session_undelivered(self, session, message, reason):
        self.log.warn("undelivered to node {node}: {what}: {reason}", node=session.node,
                      what=message.describe(), reason=reason, log_event="cloudhub_undelivered")
        for observer in self._observers:
            if hasattr(observer, "node_undelivered"):
                observer.node_undelivered(session.node, message, reason)

    # -- inbound ------------------------------------------------------------------------------

    def frame_received(self, proto, payload):
        if proto.session is None or self._sessions.get(proto.node) is not proto:
            return  # a replaced connection still draining
        if len(payload) > self.max_message_size:
            match = _MSG_ID.search(bytes(payload[:4096]))
            self._bad_frame(proto, "message of {} bytes exceeds maxMessageSize {}".format(
                len(payload), self.max_message_size),
                match.group(1).decode() if match else "", payload)
            return
        try:
            message = decode(payload)
        except MessageError as e:
            self._bad_frame(proto, e.reason, e.msg_id, payload)
            return
        if message.is_empty:
            return  # v1.15 edges send zero-value messages while shutting down
        if message.operation not in names.KNOWN_OPERATIONS:
            self._bad_frame(proto, "unknown operation {!r}".format(message.operation),
                            message.msg_id, payload, message)
            return
        proto.bad_frames = 0
        if message.operation == names.OP_KEEPALIVE:
            proto.session.keepalive()
            return
        self._route_inbound(proto, message)

    def _bad_frame(self, proto, reason, msg_id, payload, message=None):
        proto.bad_frames += 1
        self.log.warn("bad frame from node {node} ({count} in a row): {reason}",
                      node=proto.node, count=proto.bad_frames, reason=reason,
                      log_event="cloudhub_bad_frame")
        if msg_id:
            request = message or new_message("", "", "", "")
            request = request.replace(msg_id=msg_id)
            proto.write_message(new_error(request, reason, source=names.CLOUDHUB,
                                          clock=self.clock))
        if proto.bad_frames >= MAX_BAD_FRAMES:
            self.log.warn("closing node {node}: {count} invalid messages in a row",
                          node=proto.node, count=proto.bad_frames,
                          log_event="cloudhub_closed_bad_frames")
            proto.close_with(CLOSE_POLICY_VIOLATION, "too many invalid messages")

    def _route_inbound(self, proto, message):
        node = proto.node
        waiting = bool(message.parent_msg_id) and self.bus.is_waiting(message.parent_msg_id)
        if message.operation == names.OP_RESPONSE and message.parent_msg_id:
            if proto.session.ack(message.parent_msg_id) and not waiting:
                return  # a plain ACK: consumed here, never copied or forwarded
        cloud_message = message.replace(resource=prepend_node(node, message.resource))
        if waiting:
            self.bus.send_resp(cloud_message)
            return
        group = (names.DEVICECONTROLLER_GROUP if message.source == names.DEVICETWIN
                 else names.EDGECONTROLLER_GROUP)
        members = self.bus.group_members(group)
        if not members:
            self.log.info("no {group} module to take {what} from node {node}", group=group,
                          what=message.describe(), node=node,
                          log_event="cloudhub_no_controller")
            return
        if proto.backlog or not all(m.has_room() for m in members):
            self._hold(proto, group, message, cloud_message)
            return
        self.bus.send_to_group(group, cloud_message)

    # -- inbound backpressure -----------------------------------------------------------------

    def _hold(self, proto, group, message, cloud_message):
        """A controller's inbox is full: keep the message, in order, and stop reading from
        this edge until it drains (KubeEdge's bus blocks the reading goroutine instead)."""
        if len(proto.backlog) >= self.inbound_backlog:
            if message.msg_id:
                proto.write_message(new_error(message, "cloud is busy, retry later",
                                              source=names.CLOUDHUB, clock=self.clock))
            return
        proto.backlog.append((group, cloud_message))
        if not proto.reading_paused:
            proto.reading_paused = True
            pause = getattr(proto.transport, "pauseProducing", None)
            if pause is not None:
                pause()
            self.log.debug("pausing reads from node {node}: controllers are busy",
                           node=proto.node)
        if proto.backlog_call is None:
            proto.backlog_call = self.clock.callLater(BACKLOG_RETRY, self._drain_backlog, proto)

    def _drain_backlog(self, proto):
        proto.backlog_call = None
        while proto.backlog:
            group, cloud_message = proto.backlog[0]
            members = self.bus.group_members(group)
            if members and not all(m.has_room() for m in members):
                proto.backlog_call = self.clock.callLater(BACKLOG_RETRY, self._drain_backlog,
                                                          proto)
                return
            proto.backlog.popleft()
            if members:
                self.bus.send_to_group(group, cloud_message)
        if proto.reading_paused:
            proto.reading_paused = False
            resume = getattr(proto.transport, "resumeProducing", None)
            if resume is not None and proto.state != proto.STATE_CLOSED:
                resume()

    def flush_backlog(self, proto):
        """Hand every held message over now, inbox bounds notwithstanding (the connection
        is closing; what the edge sent must not be lost)."""
        while proto.backlog:
            group, cloud_message = proto.backlog.popleft()
            for member in self.bus.group_members(group):
                member.enqueue(cloud_message, force=True)

    # -- outbound (messages other cloud modules send to cloudhub) -----------------------------

    def handle(self, message):
        node = node_of(message.resource)
        if not node:
            self.log.warn("cloudhub cannot route {what}: resource has no node/<id>/ prefix",
                          what=message.describe(), log_event="cloudhub_unroutable")
            return
        proto = self._sessions.get(node)
        if self._is_node_stop(message):
            if proto is not None:
                self.log.info("closing node {node} on request", node=node,
                              log_event="cloudhub_node_stop")
                proto.close_with(CLOSE_NORMAL, "node removed")
            return
        edge_message = message.replace(resource=strip_node(message.resource))
        if proto is None:
            self.session_undelivered(_Detached(node), edge_message, "node not connected")
            return
        proto.session.enqueue(edge_message)

    @staticmethod
    def _is_node_stop(message):
        """KubeEdge's stop signal: ``node/<id>`` with ``deleted``, or ``updated`` with
        ``{"action": "stop"}`` (reference 2.5)."""
        if message.resource.count("/") != 1:
            return False
        if message.operation == names.OP_DELETED:
            return True
        return (message.operation == names.OP_UPDATED
                and isinstance(message.content_object(), dict)
                and message.content_object().get("action") == "stop")


class _Detached:
    """Stands for the session of a node that is not connected, in undelivered reports."""

    def __init__(self, node):
        self.node = node
