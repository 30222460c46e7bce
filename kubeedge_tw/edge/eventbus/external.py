"""EventBus's client for an external MQTT broker (``mqttMode`` 1 or 2), e.g. mosquitto.

**How paho-mqtt is driven, and why.** paho offers two ways to run: its own network thread
(``loop_start``), whose callbacks would all have to be bounced to the reactor with
``callFromThread``, or the *external event loop* hooks (``socket()``, ``loop_read``,
``loop_write``, ``loop_misc`` and the ``on_socket_register_write`` /
``on_socket_unregister_write`` / ``on_socket_close`` callbacks). This module uses the
hooks: the paho socket is registered with the reactor as an ``IReadDescriptor`` /
``IWriteDescriptor`` (write interest only while paho has bytes queued), ``loop_misc`` runs
on a ``LoopingCall`` on the injected clock for keepalive pings, and so **every paho
callback runs on the reactor thread** -- no locks, no thread hand-off per message, the
same threading model as every other module, and the bus is only touched from the reactor.

The one blocking step is paho's ``reconnect()`` (DNS and a blocking TCP connect of up to
its connect timeout, which would freeze the reactor for a remote or black-holed broker);
it runs on a thread (``run_blocking``, the reactor's thread pool in production) while
nothing else touches the client, and the socket is registered with the reactor when it
returns. Reconnects wait ``backoff(attempt)`` seconds on the clock -- by default Twisted's
``backoffPolicy`` as used by ``ClientService`` elsewhere in kubeedge-tw -- and every
subscription is made again after each CONNACK (clean session, as KubeEdge's hub client).
Publishes made while disconnected wait in a bounded queue (``queue_size``, oldest dropped
with a log line) and go out after the next CONNACK.
"""

import collections
import socket

from paho.mqtt import client as mqtt
from twisted.application import service
from twisted.application.internet import backoffPolicy
from twisted.internet import defer, threads
from twisted.internet.interfaces import IReadDescriptor, IWriteDescriptor
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from kubeedge_tw.edge.eventbus.interfaces import IMQTTLink
from kubeedge_tw.edge.eventbus.topics import topic_filter_error, topic_name_error

__all__ = ["ExternalMQTTClient", "DEFAULT_KEEPALIVE"]

#: MQTT keepalive towards the external broker, seconds.
DEFAULT_KEEPALIVE = 30
#: Seconds allowed between the TCP connection and CONNACK.
DEFAULT_CONNACK_TIMEOUT = 10.0
#: Unacknowledged QoS 1 publishes towards the external broker.
MAX_INFLIGHT = 200
#: Seconds stopService waits for paho to send DISCONNECT before closing the socket.
STOP_TIMEOUT = 2.0


def _thread_pool_runner(reactor):
    """The production ``run_blocking``: call on the reactor's thread pool."""

    def run(function):
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), function)
    return run


def _fire_all(waiters, result=None):
    for d in waiters:
        d.callback(result)


@implementer(IReadDescriptor, IWriteDescriptor)
class _PahoSocket:
    """paho's socket as the reactor sees it: readable -> ``loop_read``, writable ->
    ``loop_write``."""

    def __init__(self, owner, sock):
        self._owner = owner
        self._fileno = sock.fileno()

    def fileno(self):
        """The socket's descriptor (-1 once closed)."""
        return self._fileno

    def doRead(self):
        """Let paho read and handle what arrived."""
        self._owner._do_read()

    def doWrite(self):
        """Let paho write what it has queued."""
        self._owner._do_write()

    def connectionLost(self, reason):
        """The reactor gave up on the descriptor; paho notices on its next call."""
        self._fileno = -1

    def logPrefix(self):
        """Prefix for the reactor's log lines."""
        return "mqtt-external"


@implementer(IMQTTLink)
class ExternalMQTTClient(service.Service):
    """A paho-mqtt client to ``host:port`` run by the reactor (see module docstring).

    ``on_message(topic, payload)`` is called on the reactor thread for every message
    received. :meth:`subscribe` and :meth:`publish` may be called at any time.
    """

    log = Logger()

    def __init__(self, reactor, *, host, port, client_id, keepalive=DEFAULT_KEEPALIVE,
                 queue_size=100, backoff=None, run_blocking=None,
                 connack_timeout=DEFAULT_CONNACK_TIMEOUT, misc_interval=1.0):
        self.reactor = reactor
        self.host = host
        self.port = port
        self.client_id = client_id
        self.keepalive = keepalive
        self.queue_size = queue_size
        self.backoff = backoff or backoffPolicy()
        self.run_blocking = run_blocking or _thread_pool_runner(reactor)
        self.connack_timeout = connack_timeout
        self.misc_interval = misc_interval
        self.on_message = None
        #: filter -> QoS, subscribed again after every CONNACK.
        self.subscriptions = {}
        self.connected = False
        self._client = None
        self._descriptor = None
        self._in_thread = False
        self._connecting = None
        self._retry_call = None
        self._connack_call = None
        self._failures = 0
        self._misc = None
        self._pending = collections.deque()
        self._stopping = False
        self._closed_waiters = []
        self._connected_waiters = []
        self._disconnected_waiters = []
        self._subscribed_waiters = []
        self._subscribe_mid = None
        #: True once the broker acknowledged this connection's subscriptions.
        self.subscribed = False
        #: Counters for operators and tests.
        self.stats = {"connects": 0, "published": 0, "received": 0, "dropped": 0}

    # -- public API ---------------------------------------------------------------------------

    def subscribe(self, topic_filter, qos=1):
        """Subscribe ``topic_filter`` now (if connected) and after every reconnect."""
        error = topic_filter_error(topic_filter)
        if error is not None:
            raise ValueError(error)
        self.subscriptions[topic_filter] = qos
        if self.connected:
            self._client.subscribe(topic_filter, qos)

    def publish(self, topic, payload, qos=0, retain=False):
        """Publish now, or after the next CONNACK while disconnected (bounded queue)."""
        error = topic_name_error(topic)
        if error is not None:
            raise ValueError(error)
        if self.connected:
            self._publish_now(topic, payload, qos, retain)
            return
        if len(self._pending) >= self.queue_size:
            dropped = self._pending.popleft()
            self.stats["dropped"] += 1
            self.log.warn("external MQTT broker unreachable and {size} publishes queued: "
                          "dropped the oldest, on {topic}", size=self.queue_size,
                          topic=dropped[0], log_event="mqtt_external_queue_full")
        self._pending.append((topic, bytes(payload), qos, retain))

    def wait_connected(self):
        """A Deferred firing once connected (at once when already)."""
        if self.connected:
            return defer.succeed(None)
        d = defer.Deferred()
        self._connected_waiters.append(d)
        return d

    def wait_subscribed(self):
        """A Deferred firing once the subscriptions made after the current (or next)
        CONNACK are acknowledged."""
        if self.connected and self.subscribed:
            return defer.succeed(None)
        d = defer.Deferred()
        self._subscribed_waiters.append(d)
        return d

    def wait_disconnected(self):
        """A Deferred firing once not connected (at once when already)."""
        if not self.connected:
            return defer.succeed(None)
        d = defer.Deferred()
        self._disconnected_waiters.append(d)
        return d

    # -- connecting ---------------------------------------------------------------------------

    def _new_client(self):
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             clean_session=True, protocol=mqtt.MQTTv311,
                             reconnect_on_failure=False)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        # paho's default of 20 unacknowledged QoS 1 publishes throttles the twin's three
        # results per update; the broker's own limit still applies on its side.
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.on_message = self._on_paho_message
        client.on_subscribe = self._on_subscribe
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        client.on_socket_close = self._on_socket_close
        client.connect_async(self.host, self.port, self.keepalive)
        return client

    def _attempt(self):
        self._retry_call = None
        if self._stopping:
            return
        self._in_thread = True
        self._connecting = self.run_blocking(self._client.reconnect)
        self._connecting.addCallbacks(self._socket_opened, self._connect_failed)
        self._connecting.addErrback(lambda f: self.log.failure(
            "external MQTT connect handling failed", f,
            log_event="mqtt_external_internal_error"))

    def _socket_opened(self, _):
        self._in_thread = False
        self._connecting = None
        sock = self._client.socket()
        if sock is None:
            self._connect_failed(None)
            return
        try:
            # Small packets both ways: do not let Nagle wait for delayed ACKs.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        self._descriptor = _PahoSocket(self, sock)
        if self._stopping:
            self._force_close()
            return
        self.reactor.addReader(self._descriptor)
        if self._client.want_write():
            self.reactor.addWriter(self._descriptor)
        self._misc = LoopingCall(self._do_misc)
        self._misc.clock = self.reactor
        self._misc.start(self.misc_interval, now=False)
        self._connack_call = self.reactor.callLater(self.connack_timeout, self._connack_late)

    def _connect_failed(self, failure):
        self._in_thread = False
        self._connecting = None
        reason = failure.getErrorMessage() if failure is not None else "no socket"
        self._fail_and_retry("cannot connect to {}:{}: {}".format(self.host, self.port, reason))

    def _fail_and_retry(self, why):
        self._failures += 1
        if self._stopping or not self.running:
            self._fire_closed()
            return
        delay = self.backoff(self._failures)
        log = self.log.warn if self._failures == 1 else self.log.info
        log("external MQTT broker: {why}; retrying in {delay:.1f}s (attempt {attempt})",
            why=why, delay=delay, attempt=self._failures, log_event="mqtt_external_retry")
        self._retry_call = self.reactor.callLater(delay, self._attempt)

    def _connack_late(self):
        self._connack_call = None
        self.log.warn("external MQTT broker {host}:{port} sent no CONNACK within {timeout}s",
                      host=self.host, port=self.port, timeout=self.connack_timeout,
                      log_event="mqtt_external_connack_timeout")
        self._client.disconnect()
        self._do_write()

    # -- paho callbacks (all on the reactor thread, except during reconnect()) --------------

    def _on_register_write(self, client, userdata, sock):
        if self._in_thread or self._descriptor is None:
            return  # registered by _socket_opened once reconnect() has returned
        self.reactor.addWriter(self._descriptor)

    def _on_unregister_write(self, client, userdata, sock):
        if self._in_thread or self._descriptor is None:
            return
        self.reactor.removeWriter(self._descriptor)

    def _on_socket_close(self, client, userdata, sock):
        if self._in_thread:
            return
        self._remove_descriptor()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if self._connack_call is not None and self._connack_call.active():
            self._connack_call.cancel()
        self._connack_call = None
        if reason_code.is_failure:
            self.log.warn("external MQTT broker {host}:{port} refused the connection: "
                          "{reason}", host=self.host, port=self.port, reason=str(reason_code),
                          log_event="mqtt_external_refused")
            return  # paho closes the socket; _on_disconnect schedules the retry
        self.connected = True
        self._failures = 0
        self.stats["connects"] += 1
        self.log.info("connected to external MQTT broker {host}:{port} as {client}",
                      host=self.host, port=self.port, client=self.client_id,
                      log_event="mqtt_external_connected")
        self.subscribed = False
        if self.subscriptions:
            _, self._subscribe_mid = client.subscribe(list(self.subscriptions.items()))
        else:
            self._subscribe_mid = None
            self._subscribed()
        pending, self._pending = self._pending, collections.deque()
        for topic, payload, qos, retain in pending:
            self._publish_now(topic, payload, qos, retain)
        waiters, self._connected_waiters = self._connected_waiters, []
        self._later(waiters)

    def _later(self, waiters, *args):
        """Fire ``waiters`` on the next reactor turn: paho holds a non-reentrant lock
        while it runs a callback, so nothing that may call back into paho runs inside."""
        if waiters:
            self.reactor.callLater(0, _fire_all, waiters, *args)

    def _on_disconnect(self, client, userdata, disconnect_flags, reason_code, properties):
        was_connected, self.connected = self.connected, False
        waiters, self._disconnected_waiters = self._disconnected_waiters, []
        self._later(waiters)
        self._stop_misc()
        self._remove_descriptor()
        if self._connack_call is not None and self._connack_call.active():
            self._connack_call.cancel()
        self._connack_call = None
        if self._stopping or not self.running:
            self._fire_closed()
            return
        if was_connected:
            self.log.warn("lost the external MQTT broker {host}:{port}: {reason}",
                          host=self.host, port=self.port, reason=str(reason_code),
                          log_event="mqtt_external_lost")
            self._failures = 0
        self._fail_and_retry("disconnected ({})".format(reason_code))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if mid != self._subscribe_mid:
            return
        filters = list(self.subscriptions)
        refused = [f for f, code in zip(filters, reason_codes) if code.is_failure]
        if refused:
            self.log.warn("external MQTT broker refused subscriptions: {filters}",
                          filters=", ".join(refused), log_event="mqtt_external_sub_refused")
        self._subscribed()

    def _subscribed(self):
        self.subscribed = True
        waiters, self._subscribed_waiters = self._subscribed_waiters, []
        self._later(waiters)

    def _on_paho_message(self, client, userdata, message):
        self.stats["received"] += 1
        try:
            topic = message.topic
        except UnicodeDecodeError:
            self.log.warn("external MQTT broker delivered a topic that is not UTF-8; dropped",
                          log_event="mqtt_external_bad_topic")
            return
        self.reactor.callLater(0, self._deliver, topic, message.payload)

    def _deliver(self, topic, payload):
        if self.on_message is None:
            return
        try:
            self.on_message(topic, payload)
        except Exception:
            self.log.failure("handling a message on {topic} failed", topic=topic,
                             log_event="mqtt_external_handler_failed")

    # -- I/O --------------------------------------------------------------------------------

    def _do_read(self):
        if self._client is not None and not self._in_thread:
            self._client.loop_read()

    def _do_write(self):
        if self._client is not None and not self._in_thread:
            self._client.loop_write()

    def _do_misc(self):
        if self._client is not None and not self._in_thread:
            self._client.loop_misc()

    def _publish_now(self, topic, payload, qos, retain):
        info = self._client.publish(topic, payload, qos, retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.log.warn("publish on {topic} to the external broker failed: {reason}",
                          topic=topic, reason=mqtt.error_string(info.rc),
                          log_event="mqtt_external_publish_failed")
            return
        self.stats["published"] += 1

    def _remove_descriptor(self):
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            self.reactor.removeReader(descriptor)
            self.reactor.removeWriter(descriptor)

    def _stop_misc(self):
        if self._misc is not None and self._misc.running:
            self._misc.stop()
        self._misc = None

    def _force_close(self):
        """Close the socket without waiting for paho (stopping only)."""
        self._stop_misc()
        sock = self._client.socket() if self._client is not None else None
        self._remove_descriptor()
        if sock is not None:
            sock.close()
        self.connected = False
        self._fire_closed()

    def _fire_closed(self):
        waiters = self._closed_waiters + self._disconnected_waiters
        self._closed_waiters, self._disconnected_waiters = [], []
        self._later(waiters)

    # -- service ----------------------------------------------------------------------------

    def startService(self):
        """Start connecting (the first attempt at once)."""
        super().startService()
        self._stopping = False
        self._failures = 0
        self._client = self._new_client()
        self.log.info("connecting to external MQTT broker {host}:{port}", host=self.host,
                      port=self.port, log_event="mqtt_external_starting")
        self._attempt()

    def stopService(self):
        """Send DISCONNECT and close; the Deferred fires when the socket is closed and no
        timer or thread call is left."""
        super().stopService()
        self._stopping = True
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None
        if self._connack_call is not None and self._connack_call.active():
            self._connack_call.cancel()
        self._connack_call = None
        for d in self._connected_waiters:
            d.errback(defer.CancelledError("the external MQTT client stopped"))
        self._connected_waiters = []
        d = defer.Deferred()
        self._closed_waiters.append(d)
        if self._connecting is not None:
            return d  # _socket_opened / _connect_failed finish the job
        if self._descriptor is None:
            self._fire_closed()
            return d
        self._client.disconnect()
        self._do_write()
        if self._descriptor is None:
            self._fire_closed()
            return d
        timer = self.reactor.callLater(STOP_TIMEOUT, self._force_close)

        def cancel_timer(result):
            if timer.active():
                timer.cancel()
            return result
        return d.addBoth(cancel_timer)
