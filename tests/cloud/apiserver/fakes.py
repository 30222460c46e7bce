"""Test doubles for the embedded API server's unit tests, verified in ``test_fakes``.

* :class:`ThreadlessReactor`: a ``Clock`` that also has what ``adbapi`` and
  ``deferToThreadPool`` use of a reactor (``callFromThread``, ``callWhenRunning``, system
  event triggers), running thread callbacks at once;
* :class:`ManualThreadPool`: a thread pool whose work runs synchronously in the test's
  thread, either at once or when the test calls :meth:`~ManualThreadPool.run_pending`
  (to hold a transaction open and queue more writes behind it);
* :func:`sync_store`: a real :class:`~kubeedge_tw.cloud.apiserver.store.Store` on a real
  sqlite file whose pool uses the two above, so store, verbs, watches and HTTP handling
  run deterministically in a ``SynchronousTestCase`` (Synapse's test harness idea);
* :func:`http_request`: one HTTP/1.1 exchange with a twisted.web ``Site`` over a
  ``StringTransport``, returning the parsed response.
"""

import json

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import failure

from kubeedge_tw.cloud.apiserver.store import Store, connection_pool

__all__ = ["ThreadlessReactor", "ManualThreadPool", "sync_store", "http_request",
           "Response"]


class ThreadlessReactor(Clock):
    """A Clock with the reactor methods adbapi needs; nothing here uses real threads."""

    def __init__(self):
        super().__init__()
        self.triggers = {}
        self._next_trigger = 0
        self.when_running = []

    def callFromThread(self, f, *args, **kwargs):
        """Run ``f`` now (there is only one thread)."""
        f(*args, **kwargs)

    def callWhenRunning(self, f, *args, **kwargs):
        """Record ``f``; this reactor never "starts", tests start pools explicitly."""
        self._next_trigger += 1
        self.when_running.append((f, args, kwargs))
        self.triggers[self._next_trigger] = ("startup", f)
        return self._next_trigger

    def addSystemEventTrigger(self, phase, event, f, *args, **kwargs):
        """Record a trigger; return its id."""
        self._next_trigger += 1
        self.triggers[self._next_trigger] = (event, f)
        return self._next_trigger

    def removeSystemEventTrigger(self, trigger_id):
        """Forget a trigger (KeyError for an unknown id, like the real reactor's
        ValueError)."""
        del self.triggers[trigger_id]


class ManualThreadPool:
    """``twisted.python.threadpool.ThreadPool``'s interface as adbapi uses it, running
    work synchronously: at once when ``immediate``, else on :meth:`run_pending`."""

    def __init__(self, immediate=True):
        self.immediate = immediate
        self.pending = []
        self.started = False
        self.joined = False

    def start(self):
        """Mark started."""
        self.started = True

    def stop(self):
        """Mark stopped (the real pool joins its threads here)."""
        self.started = False
        self.joined = True

    def callInThreadWithCallback(self, on_result, func, *args, **kwargs):
        """Run ``func`` (now or later) and report ``(success, result_or_failure)``."""
        self.pending.append((on_result, func, args, kwargs))
        if self.immediate:
            self.run_pending()

    def callInThread(self, func, *args, **kwargs):
        """Run ``func`` ignoring its result."""
        self.callInThreadWithCallback(lambda ok, result: None, func, *args, **kwargs)

    def run_pending(self):
        """Run queued work in order, including work queued while running; return how
        many items ran."""
        count = 0
        while self.pending:
            on_result, func, args, kwargs = self.pending.pop(0)
            try:
                result = func(*args, **kwargs)
            except BaseException:
                on_result(False, failure.Failure())
            else:
                on_result(True, result)
            count += 1
        return count


def sync_store(path, reactor=None, window=None, immediate=True):
    """A real Store on ``path`` whose adbapi pool runs synchronously (after ``open()``,
    ``store.pool.threadpool`` is the :class:`ManualThreadPool`); returns
    ``(store, reactor)``."""
    reactor = reactor or ThreadlessReactor()

    def factory(db_path, pool_reactor):
        pool = connection_pool(db_path, pool_reactor)
        pool.threadpool = ManualThreadPool(immediate=immediate)
        return pool

    kwargs = {} if window is None else {"window": window}
    return Store(path, reactor, pool_factory=factory, **kwargs), reactor


class Response:
    """A parsed HTTP response: ``code``, ``headers`` (lower-case names), ``body`` bytes
    (de-chunked) and ``json()``."""

    def __init__(self, code, headers, body, complete):
        self.code = code
        self.headers = headers
        self.body = body
        self.complete = complete

    def json(self):
        """The body as JSON."""
        return json.loads(self.body)

    def lines(self):
        """The body's non-empty lines parsed as JSON (watch events)."""
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


def _parse_response(data):
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.split(b"\r\n")
    code = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode()
    if headers.get("transfer-encoding") == "chunked":
        body, complete = b"", False
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                complete = True
                break
            body += rest[:size]
            rest = rest[size + 2:]
        return Response(code, headers, body, complete)
    length = int(headers.get("content-length", len(rest)))
    return Response(code, headers, rest[:length], len(rest) >= length)


class HTTPConnection:
    """A client connection to a Site over a StringTransport."""

    def __init__(self, site):
        self.protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        self.protocol.makeConnection(self.transport)

    def send(self, method, path, body=None, headers=None, token="secret"):
        """Send one request; return the response parsed from what was written so far
        (for a watch: the events so far, ``complete`` False while it is open)."""
        headers = dict(headers or {})
        if token is not None:
            headers.setdefault("Authorization", "Bearer " + token)
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        lines = ["{} {} HTTP/1.1".format(method, path), "Host: 127.0.0.1"]
        lines += ["{}: {}".format(k, v) for k, v in headers.items()]
        lines.append("Content-Length: {}".format(len(body or b"")))
        self.transport.clear()
        self.protocol.dataReceived("\r\n".join(lines).encode() + b"\r\n\r\n" + (body or b""))
        return self.response()

    def response(self):
        """The response written so far."""
        return _parse_response(self.transport.value())

    def close(self):
        """Drop the connection (the client went away)."""
        from twisted.internet.error import ConnectionDone
        self.protocol.connectionLost(failure.Failure(ConnectionDone()))


def http_request(site, method, path, body=None, headers=None, token="secret"):
    """One request on a fresh connection; the parsed :class:`Response`."""
    return HTTPConnection(site).send(method, path, body, headers, token)


class TestServer:
    """A complete API server (sync store on a temp file, verbs, HTTP resource with the
    bearer token ``secret``) for unit tests; ``clock`` drives time."""

    def __init__(self, path, window=None, watch_timeout=None, bookmark_interval=None):
        from twisted.web import server as web_server

        from kubeedge_tw.cloud.apiserver.api import APIServer
        from kubeedge_tw.cloud.apiserver.auth import Authenticator
        from kubeedge_tw.cloud.apiserver.crds import kubeedge_crds
        from kubeedge_tw.cloud.apiserver.http import APIRequest, APIResource
        from kubeedge_tw.cloud.apiserver.resources import Registry, builtin_types

        self.path = path
        self.store, self.clock = sync_store(path, window=window)
        self.clock.advance(1714564800)  # 2024-05-01T12:00:00Z
        self.store.open()
        self.registry = Registry(builtin_types())
        self.api = APIServer(self.store, self.registry, self.clock)
        self.api.bootstrap(kubeedge_crds())
        options = {} if watch_timeout is None else {"watch_timeout": watch_timeout}
        self.resource = APIResource(self.api, Authenticator("secret"), self.clock,
                                    bookmark_interval=bookmark_interval, **options)
        self.site = web_server.Site(self.resource, requestFactory=APIRequest,
                                    reactor=self.clock)

    def request(self, method, path, body=None, headers=None, token="secret"):
        """One HTTP request; the parsed Response."""
        return http_request(self.site, method, path, body, headers, token)

    def connect(self):
        """A connection for several requests or a watch."""
        return HTTPConnection(self.site)

    def close(self):
        """End watches and close the store."""
        self.resource.stop_watches()
        self.api.stop()
        return self.store.close()
