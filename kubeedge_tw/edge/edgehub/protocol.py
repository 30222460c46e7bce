"""The websocket client under EdgeHub: autobahn's protocol and factory, with every timer on
the injected clock.

The protocol does no message work itself: it tells the hub when the websocket opened,
when a (reassembled) message arrived and when the connection closed, and the hub decides.

Autobahn schedules its timers (opening-handshake timeout, auto-ping and its timeout,
closing-handshake timeout) through ``factory._batched_timer`` and, for the wait after a
closing handshake, through txaio's global reactor. To keep time injectable (STYLE.md 2.3)
the factory replaces the former with :class:`ClockTimer` and disables the latter; the
protocol runs its own "peer did not drop the TCP connection after the close handshake"
timer on the clock instead.
"""

import ipaddress

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectingRequest

__all__ = ["ClockTimer", "EdgeHubClientProtocol", "EdgeHubClientFactory", "bracket_ipv6"]


class _ClockCall:
    """A delayed call whose ``cancel`` is a no-op once it ran (autobahn may cancel late)."""

    __slots__ = ("_call",)

    def __init__(self, call):
        self._call = call

    def cancel(self):
        """Cancel the call unless it already ran or was cancelled."""
        if self._call.active():
            self._call.cancel()

    def active(self):
        """Whether the call is still pending."""
        return self._call.active()


class ClockTimer:
    """txaio's ``IBatchedTimer`` (the one method autobahn uses) on an injected clock.

    Autobahn batches timers into 200 ms buckets to serve many connections; an edge has one
    connection, so plain ``callLater`` is exact and leaves nothing behind when cancelled.
    """

    def __init__(self, clock):
        self._clock = clock

    def call_later(self, delay, func, *args, **kwargs):
        """Run ``func(*args, **kwargs)`` after ``delay`` seconds on the clock."""
        return _ClockCall(self._clock.callLater(delay, func, *args, **kwargs))


def bracket_ipv6(host):
    """``host`` as it goes in an HTTP ``Host`` header: IPv6 addresses in brackets."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return "[{}]".format(host)
    except ValueError:
        pass
    return host


class EdgeHubClientProtocol(WebSocketClientProtocol):
    """One websocket connection to CloudHub; reports to ``factory.hub``.

    Its ``log`` stays autobahn's txaio logger, which drops autobahn's per-frame debug and
    trace lines below txaio's log level (info): a plain ``twisted.logger.Logger`` here
    would send every one of them to twistd's log.
    """

    _close_call = None

    def onConnecting(self, transport_details):
        """The opening request, as the factory describes it but with a ``Host`` header that
        brackets an IPv6 address (autobahn writes ``Host: ::1:10000``; Go writes
        ``[::1]:10000``)."""
        factory = self.factory
        return ConnectingRequest(
            host=bracket_ipv6(factory.host), port=factory.port,
            resource=factory.resource, headers=factory.headers,
            useragent=factory.useragent, origin=factory.origin,
            protocols=factory.protocols)

    def onOpen(self):
        """The websocket is open: the hub starts using it."""
        self.factory.hub.link_opened(self)

    def onMessage(self, payload, isBinary):
        """A complete message (autobahn reassembles fragments) for the hub."""
        self.factory.hub.frame_received(payload, isBinary)

    def onClose(self, wasClean, code, reason):
        """The connection is gone (or never opened); the hub is told either way."""
        self.factory.hub.link_closed(self, wasClean, code, reason)

    def sendCloseFrame(self, code=None, reasonUtf8=None, isReply=False):
        """Send a close frame and give the peer ``factory.close_timeout`` seconds to end
        the TCP connection; after that we drop it ourselves (on the clock, see module)."""
        super().sendCloseFrame(code=code, reasonUtf8=reasonUtf8, isReply=isReply)
        if self.state == WebSocketProtocol.STATE_CLOSING and self._close_call is None:
            self._close_call = self.factory.clock.callLater(
                self.factory.close_timeout, self._close_timed_out)

    def _close_timed_out(self):
        self._close_call = None
        if self.state != WebSocketProtocol.STATE_CLOSED:
            self.wasClean = False
            self.wasNotCleanReason = ("closing handshake timeout (cloud did not end the "
                                      "connection in time)")
            self.dropConnection(abort=True)

    def connectionLost(self, reason):
        """Cancel our close timer, then let autobahn finish (it calls :meth:`onClose`)."""
        if self._close_call is not None:
            if self._close_call.active():
                self._close_call.cancel()
            self._close_call = None
        super().connectionLost(reason)


class EdgeHubClientFactory(WebSocketClientFactory):
    """Builds :class:`EdgeHubClientProtocol` for ``hub``, with KubeEdge's URL and headers
    and the protocol options EdgeHub needs (see :class:`~kubeedge_tw.edge.edgehub.EdgeHub`).
    """

    protocol = EdgeHubClientProtocol

    def __init__(self, hub, clock, url, headers, *, handshake_timeout, heartbeat,
                 max_message_size, close_timeout):
        super().__init__(url=url, headers=headers, reactor=clock)
        # Autobahn's timer seam (a private attribute): see the module docstring.
        self._batched_timer = ClockTimer(clock)
        self.hub = hub
        self.clock = clock
        self.close_timeout = close_timeout
        self.setProtocolOptions(
            openHandshakeTimeout=handshake_timeout,
            # A dead or half-open cloud: a ping every heartbeat, no pong (or other data)
            # within another heartbeat -> connection dropped, ClientService reconnects.
            autoPingInterval=heartbeat,
            autoPingTimeout=heartbeat,
            maxMessagePayloadSize=max_message_size,
            maxFramePayloadSize=max_message_size,
            # Both replaced by the protocol's own timer on the clock (module docstring).
            closeHandshakeTimeout=0,
            serverConnectionDropTimeout=0,
        )
