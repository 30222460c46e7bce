"""EdgeHub (KubeEdge module ``websocket``, group ``hub``): the edge's end of the cloud link.

What it does, with the KubeEdge behaviour each part reproduces:

* **Connection** (reference 2.2, 2.3, 2.11): one TLS websocket to CloudHub at
  ``wss://<server>/<projectID>/<nodeName>/events`` with the headers a v1.15 edge sends
  (``node_id``, ``project_id``, ``ConnectionUse: msg``), the server verified against the CA
  including its host name or IP. Reconnects are Twisted's ``ClientService`` with
  ``backoffPolicy`` (1 s, x1.5, at most 60 s, jitter) instead of KubeEdge's "5 tries, then
  wait" loop, so a restarted cloud sees the edge again within seconds. The TLS files are
  read at every attempt, so an edge may start before ``join`` has written them.
* **Keepalive** (2.4): the ``keepalive`` message every ``heartbeat`` seconds, the first as
  soon as the websocket opens. Websocket pings on the same period detect a dead or
  half-open cloud within 2 x heartbeat.
* **Outbound**: what other modules send to ``websocket`` goes out as one JSON text frame.
  A ``send_sync`` caller is waiting on the bus; its reply is the cloud message whose
  ``parent_msg_id`` names the request. While disconnected, status that must not be lost
  is kept (:mod:`~kubeedge_tw.edge.edgehub.offline`) and sent right after reconnecting; a
  sync request is answered at once with an ``error`` reply; anything else is logged and
  dropped.
* **Inbound** (2.5): replies go to their waiting ``send_sync``; everything else is routed
  by ``route.group`` (``resource``/``func`` -> ``meta``, ``twin`` -> ``twin``, ``user`` ->
  ``bus``). Bad frames, unknown groups and full inboxes are logged and dropped; the
  connection stays up.
* **Connection broadcast** (2.8): ``cloud_connected`` / ``cloud_disconnected`` to every
  other group on the bus.

The transport is a seam: ``endpoint_factory(host, port)`` returns the
``IStreamClientEndpoint`` for one attempt (:class:`TLSEndpointFactory` in production; unit
tests connect over ``iosim`` without TLS).
"""

import random
import socket

from autobahn.exception import Disconnected
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from kubeedge_tw.common import names
from kubeedge_tw.common.bus import UnknownModule
from kubeedge_tw.common.message import MessageError, decode, encode, new_error, new_message
from kubeedge_tw.common.module import Module, QueueFull
from kubeedge_tw.common.tls import TLSFilesError, client_options
from kubeedge_tw.edge.edgehub.offline import (
    DEFAULT_OFFLINE_QUEUE_SIZE, OfflineQueue, keep_while_offline)
from kubeedge_tw.edge.edgehub.protocol import EdgeHubClientFactory, bracket_ipv6

__all__ = [
    "EdgeHub", "TLSEndpointFactory", "create_edgehub", "split_host_port", "edgehub_url",
    "GROUP_ROUTES", "MAX_MESSAGE_SIZE",
]

#: Cloud ``route.group`` -> edge module group (KubeEdge edgehub ``groupMap``, reference 2.5).
GROUP_ROUTES = {
    names.WIRE_GROUP_RESOURCE: names.META_GROUP,
    names.WIRE_GROUP_TWIN: names.TWIN_GROUP,
    names.WIRE_GROUP_FUNC: names.META_GROUP,
    names.WIRE_GROUP_USER: names.BUS_GROUP,
}

#: Largest message or frame accepted from the cloud (bytes), as CloudHub's default.
MAX_MESSAGE_SIZE = 8 * 1024 * 1024

#: Content of the error reply to a sync request made while the cloud is unreachable.
DISCONNECTED_REASON = "cloud is disconnected"

#: Source of the local connection broadcast (reference 2.8: ``edgehub``, not ``websocket``).
BROADCAST_SOURCE = "edgehub"


def split_host_port(server):
    """``"host:port"`` or ``"[v6]:port"`` -> ``(host, port)``; ``ValueError`` otherwise."""
    if server.startswith("["):
        host, sep, port = server[1:].partition("]:")
        if not sep:
            raise ValueError("{!r} is not [IPv6]:PORT".format(server))
    else:
        host, sep, port = server.rpartition(":")
        if not sep or ":" in host:
            raise ValueError("{!r} is not HOST:PORT".format(server))
    if not host or not port.isdigit():
        raise ValueError("{!r} is not HOST:PORT".format(server))
    return host, int(port)


def edgehub_url(host, port, project_id, node_name):
    """KubeEdge's cloud URL ``wss://<host>:<port>/<projectID>/<nodeName>/events``."""
    return "wss://{}:{}/{}/{}/events".format(bracket_ipv6(host), port, project_id,
                                             node_name)


class TLSEndpointFactory:
    """Production ``endpoint_factory``: a TLS ``HostnameEndpoint`` per connection attempt.

    The CA, certificate and key are read on every call, so files that appear (or are
    renewed) after start-up are used at the next attempt; a missing or invalid file raises
    :class:`~kubeedge_tw.common.tls.TLSFilesError`.
    """

    def __init__(self, reactor, ca_file, cert_file, key_file, timeout):
        self.reactor = reactor
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file
        #: TCP connect timeout (the websocket ``handshakeTimeout``), seconds.
        self.timeout = timeout

    def __call__(self, host, port):
        """The endpoint for one attempt to ``host:port``, server verified for ``host``."""
        options = client_options(host, self.ca_file, self.cert_file, self.key_file)
        return wrapClientTLS(options, HostnameEndpoint(self.reactor, host, port,
                                                       timeout=self.timeout))


@implementer(IStreamClientEndpoint)
class _PerAttemptEndpoint:
    """The endpoint ``ClientService`` holds: builds the real one at each ``connect``."""

    def __init__(self, hub):
        self._hub = hub

    def connect(self, protocolFactory):
        """One connection attempt through the hub's ``endpoint_factory``."""
        return self._hub._attempt(protocolFactory)

    def __repr__(self):
        return "<edgehub endpoint {}>".format(self._hub.url)


class EdgeHub(Module):
    """The ``websocket`` module: see the module docstring.

    ``clock`` is the reactor (time, and what ``TLSEndpointFactory`` connects with).
    ``endpoint_factory(host, port)`` returns an ``IStreamClientEndpoint`` for one attempt
    and may raise (``TLSFilesError`` for missing certificates); the attempt then fails
    into the backoff. ``retry_policy(attempt) -> seconds`` defaults to
    ``backoffPolicy(1, 60, 1.5, jitter)``.
    """

    name = names.EDGEHUB
    group = names.HUB_GROUP
    log = Logger()

    def __init__(self, clock, *, node_name, server_host, server_port, endpoint_factory,
                 project_id=names.DEFAULT_PROJECT_ID, heartbeat=15, handshake_timeout=30,
                 offline_queue_size=DEFAULT_OFFLINE_QUEUE_SIZE,
                 max_message_size=MAX_MESSAGE_SIZE, close_timeout=5, retry_policy=None,
                 jitter=random.random):
        super().__init__(clock)
        self.node_name = node_name
        self.project_id = project_id
        self.server_host = server_host
        self.server_port = server_port
        self.heartbeat = heartbeat
        self.handshake_timeout = handshake_timeout
        self.endpoint_factory = endpoint_factory
        self.url = edgehub_url(server_host, server_port, project_id, node_name)
        #: HTTP headers of the opening handshake (reference 2.2, as a v1.15 edge).
        self.headers = {"node_id": node_name, "project_id": project_id,
                        "ConnectionUse": "msg"}
        #: Messages kept while disconnected, sent right after the next connect.
        self.offline = OfflineQueue(offline_queue_size)
        if retry_policy is None:
            retry_policy = backoffPolicy(initialDelay=1, maxDelay=60, factor=1.5,
                                         jitter=jitter)
        self._retry_policy = retry_policy
        self._factory = EdgeHubClientFactory(
            self, clock, self.url, self.headers, handshake_timeout=handshake_timeout,
            heartbeat=heartbeat, max_message_size=max_message_size,
            close_timeout=close_timeout)
        self._service = ClientService(_PerAttemptEndpoint(self), self._factory,
                                      retryPolicy=self._retry_delay, clock=clock)
        self._protocol = None
        self._keepalive = None
        # Connections that ended before the websocket opened (TLS or upgrade refused), in a
        # row. ClientService counts a TCP connect as success; this keeps such failures in
        # the backoff instead of retrying every 1.5 s.
        self._unopened = 0
        self._connected_waiters = []
        self._disconnected_waiters = []
        #: Link counters an operator (or a test) can read.
        self.counters = {"connects": 0, "frames_in": 0, "frames_out": 0, "bad_frames": 0,
                         "kept_offline": 0, "dropped_offline": 0, "evicted_offline": 0}

    # -- state ------------------------------------------------------------------------------

    @property
    def connected(self):
        """Whether the websocket to the cloud is open."""
        return self._protocol is not None

    def wait_connected(self):
        """A Deferred that fires (with None) when the websocket is open; at once if it is.
        It never fires if the hub stops first."""
        if self.connected:
            return defer.succeed(None)
        return self._waiter(self._connected_waiters)

    def wait_disconnected(self):
        """A Deferred that fires (with None) when the open websocket closes; at once when
        not connected."""
        if not self.connected:
            return defer.succeed(None)
        return self._waiter(self._disconnected_waiters)

    @staticmethod
    def _waiter(waiters):
        d = defer.Deferred(lambda d: waiters.remove(d) if d in waiters else None)
        waiters.append(d)
        return d

    @staticmethod
    def _fire(waiters):
        pending, waiters[:] = list(waiters), []
        for d in pending:
            d.callback(None)

    # -- connection attempts ----------------------------------------------------------------

    def _retry_delay(self, attempt):
        return self._retry_policy(attempt + self._unopened)

    def _attempt(self, protocol_factory):
        try:
            endpoint = self.endpoint_factory(self.server_host, self.server_port)
        except TLSFilesError as e:
            self.log.warn("cannot connect to cloud {url}: {reason}; will retry",
                          url=self.url, reason=str(e), log_event="edgehub_tls_files")
            return defer.fail(e)
        except Exception:
            self.log.failure("cannot build the endpoint for cloud {url}; will retry",
                             url=self.url, log_event="edgehub_endpoint_failed")
            return defer.fail()
        d = endpoint.connect(protocol_factory)
        d.addErrback(self._attempt_failed)
        return d

    def _attempt_failed(self, failure):
        if not failure.check(defer.CancelledError):
            self.log.warn("cannot connect to cloud {url}: {reason}; will retry",
                          url=self.url, reason=failure.getErrorMessage(),
                          log_event="edgehub_connect_failed")
        return failure

    # -- protocol callbacks -----------------------------------------------------------------

    def link_opened(self, protocol):
        """Called by the protocol when the websocket opened: keepalive, flush what was kept
        offline, broadcast ``cloud_connected``."""
        if not self.running:
            return  # stopping: ClientService is already closing this connection
        self._protocol = protocol
        self._unopened = 0
        self.counters["connects"] += 1
        self.log.info("connected to cloud {url} as node {node}", url=self.url,
                      node=self.node_name, log_event="edgehub_connected")
        self._keepalive = LoopingCall(self._send_keepalive)
        self._keepalive.clock = self.clock
        self._keepalive.start(self.heartbeat, now=True)
        self._flush_offline()
        self._broadcast(names.CLOUD_CONNECTED)
        self._fire(self._connected_waiters)

    def link_closed(self, protocol, was_clean, code, reason):
        """Called by the protocol when its connection ended, opened or not."""
        if protocol is not self._protocol:
            if not self.running:
                return  # closed by stopService before it opened
            self._unopened += 1
            self.log.warn("websocket to cloud {url} did not open: {reason}",
                          url=self.url, reason=reason or "connection closed",
                          log_event="edgehub_handshake_failed")
            return
        self._protocol = None
        self._stop_keepalive()
        # Expected while stopping (info); otherwise the link broke (warn).
        emit = self.log.warn if self.running else self.log.info
        emit("disconnected from cloud {url} (code {code}, clean {clean}): {reason}",
             url=self.url, code=code, clean=was_clean, reason=reason or "-",
             log_event="edgehub_disconnected")
        self._broadcast(names.CLOUD_DISCONNECTED)
        self._fire(self._disconnected_waiters)

    def frame_received(self, payload, is_binary):
        """Called by the protocol with each complete message from the cloud."""
        self.counters["frames_in"] += 1
        try:
            self._route(payload)
        except Exception:
            # _route handles every expected case; this is a bug, never the link's end.
            self.log.failure("cannot handle a frame from cloud {url}", url=self.url,
                             log_event="edgehub_inbound_failed")

    # -- inbound ----------------------------------------------------------------------------

    def _route(self, payload):
        try:
            message = decode(payload)
        except MessageError as e:
            self.counters["bad_frames"] += 1
            self.log.warn("ignored a bad frame from cloud {url}: {reason}", url=self.url,
                          reason=e.reason, msg_id=e.msg_id, log_event="edgehub_bad_frame")
            return
        if message.is_empty:
            return  # a v1.15 cloudcore/edgecore sends these while shutting down (2.12)
        if self.bus.is_waiting(message.parent_msg_id):
            self.bus.send_resp(message)
            return
        target = GROUP_ROUTES.get(message.group)
        if target is None:
            self.log.warn("dropped {what} from cloud: no edge group for group {group!r}",
                          what=message.describe(), group=message.group,
                          log_event="edgehub_unroutable")
            return
        if not self.bus.group_members(target):
            self.log.warn("dropped {what} from cloud: no module in group {target}",
                          what=message.describe(), target=target,
                          log_event="edgehub_no_module")
            return
        try:
            self.bus.send_to_group(target, message)
        except QueueFull as e:
            self.log.warn("dropped {what} from cloud: {reason}", what=message.describe(),
                          reason=str(e), log_event="edgehub_queue_full")
        except UnknownModule as e:
            self.log.warn("dropped {what} from cloud: {reason}", what=message.describe(),
                          reason=str(e), log_event="edgehub_no_module")

    # -- outbound ---------------------------------------------------------------------------

    def handle(self, message):
        """Send ``message`` (from another edge module) to the cloud, or deal with it as the
        module docstring says when the cloud is unreachable."""
        if self._protocol is not None and self._send(message):
            return
        self._offline(message)

    def _send(self, message):
        """Write one text frame; False when the websocket is no longer open."""
        try:
            payload = encode(message)
        except (MessageError, ValueError, TypeError) as e:
            # UnicodeEncodeError (a lone surrogate) is a ValueError.
            reason = getattr(e, "reason", None) or str(e)
            self.log.warn("cannot send {what} to cloud: {reason}", what=message.describe(),
                          reason=reason, log_event="edgehub_bad_outbound")
            if message.sync:
                self._reply_error(message, "cannot encode message: {}".format(reason))
            return True
        try:
            self._protocol.sendMessage(payload, isBinary=False)
        except Disconnected:
            return False
        self.counters["frames_out"] += 1
        return True

    def _offline(self, message):
        if message.operation == names.OP_KEEPALIVE:
            return
        if keep_while_offline(message):
            # Kept even when sync: the caller's own timeout still applies, and a reply
            # that comes after it is logged by the bus as unexpected.
            replaced, evicted = self.offline.put(message)
            if replaced is None:
                self.counters["kept_offline"] += 1
            if evicted is not None:
                self.counters["evicted_offline"] += 1
                self.log.warn("offline queue full ({limit}): dropped the oldest, {what}",
                              limit=self.offline.limit, what=evicted.describe(),
                              log_event="edgehub_offline_evicted")
            return
        if message.sync:
            self._reply_error(message, DISCONNECTED_REASON)
            return
        self.counters["dropped_offline"] += 1
        self.log.warn("cloud is disconnected: dropped {what} from {source}",
                      what=message.describe(), source=message.source or "-",
                      log_event="edgehub_dropped_offline")

    def _reply_error(self, request, reason):
        if self.bus is not None and self.bus.is_waiting(request.msg_id):
            self.bus.send_resp(new_error(request, reason, source=names.EDGEHUB,
                                         clock=self.clock))

    def _flush_offline(self):
        count = 0
        while self.offline and self._protocol is not None:
            message = self.offline.popleft()
            if not self._send(message):
                self.offline.putback(message)
                break
            count += 1
        if count:
            self.log.info("sent {count} messages kept while the cloud was unreachable",
                          count=count, log_event="edgehub_offline_flushed")

    def _send_keepalive(self):
        if self._protocol is not None:
            self._send(new_message(names.EDGEHUB, names.WIRE_GROUP_RESOURCE,
                                   names.OP_KEEPALIVE, names.RES_NODE, "ping",
                                   clock=self.clock))

    def _stop_keepalive(self):
        if self._keepalive is not None and self._keepalive.running:
            self._keepalive.stop()
        self._keepalive = None

    def _broadcast(self, content):
        groups = []
        for module in self.bus.modules() if self.bus is not None else ():
            if module.group != names.HUB_GROUP and module.group not in groups:
                groups.append(module.group)
        for group in groups:
            message = new_message(BROADCAST_SOURCE, group, names.OP_PUBLISH,
                                  names.RES_NODE_CONNECTION, content, clock=self.clock)
            try:
                self.bus.send_to_group(group, message)
            except (QueueFull, UnknownModule) as e:
                self.log.warn("could not tell group {group} {content}: {reason}",
                              group=group, content=content, reason=str(e),
                              log_event="edgehub_queue_full")

    # -- service ----------------------------------------------------------------------------

    def startService(self):
        """Start the module and the connect/reconnect loop."""
        super().startService()
        self.log.info("connecting to cloud {url} as node {node}", url=self.url,
                      node=self.node_name, log_event="edgehub_starting")
        self._service.startService()

    def stopService(self):
        """Stop keepalive, close the websocket with code 1000 and stop reconnecting; the
        Deferred fires when the connection is down and no timer is left."""
        module_stopped = super().stopService()
        self._stop_keepalive()
        if self._protocol is not None:
            try:
                self._protocol.sendClose(code=1000, reason="edge hub stopping")
            except Exception:
                self.log.failure("could not send the close frame",
                                 log_event="edgehub_close_failed")
        link_stopped = self._service.stopService()
        if self.offline:
            self.log.info("stopping with {count} messages still kept for the cloud",
                          count=len(self.offline), log_event="edgehub_stopped_with_offline")
        d = defer.gatherResults([module_stopped, link_stopped], consumeErrors=True)
        d.addCallback(lambda _: None)
        return d


def edge_node_name(config):
    """This edge's node name: ``modules.edged.hostnameOverride``, or the host name
    lowercased when that is empty (KubeEdge's default)."""
    return config.modules.edged.hostnameOverride or socket.gethostname().lower()


def create_edgehub(core, config):
    """Build the :class:`EdgeHub` from ``config.modules.edgeHub`` (and the node name from
    ``modules.edged.hostnameOverride``, empty = this host's name lowercased), on
    ``core.clock``."""
    section = config.modules.edgeHub
    host, port = split_host_port(section.websocket.server)
    node_name = edge_node_name(config)
    timeout = section.websocket.handshakeTimeout
    if section.rotateCertificates:
        _add_cert_rotator(core, config, node_name)
    endpoint_factory = TLSEndpointFactory(
        core.clock, config.resolve_path(section.tlsCaFile),
        config.resolve_path(section.tlsCertFile),
        config.resolve_path(section.tlsPrivateKeyFile), timeout)
    return EdgeHub(core.clock, node_name=node_name, server_host=host, server_port=port,
                   endpoint_factory=endpoint_factory, project_id=section.projectID,
                   heartbeat=section.heartbeat, handshake_timeout=timeout)


def _add_cert_rotator(core, config, node_name):
    """Certificate rotation (``modules.edgeHub.rotateCertificates``) as a sibling service
    of EdgeHub: renews through ``modules.edgeHub.httpServer`` with the current cert.

    The renewal client (:mod:`kubeedge_tw.certs.join` with treq: about 0.7 MiB resident
    in a running edge) is imported when a renewal is due, on the reactor's thread pool,
    not at startup: a certificate lasts months and the edge need not carry that code
    meanwhile."""
    from kubeedge_tw.certs.rotation import CertRotator
    from kubeedge_tw.common.lazy import import_on_pool
    section = config.modules.edgeHub

    def renew_now(https_url, node, ca_file, cert_file, key_file):
        def with_join(join):
            return defer.Deferred.fromCoroutine(
                join.renew(core.clock, https_url, node, ca_file, cert_file, key_file))
        return import_on_pool(core.clock, "kubeedge_tw.certs.join").addCallback(with_join)

    CertRotator(core.clock, renew_now, node_name, section.httpServer,
                config.resolve_path(section.tlsCaFile), config.resolve_path(section.tlsCertFile),
                config.resolve_path(section.tlsPrivateKeyFile)).setServiceParent(core)
