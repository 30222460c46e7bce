"""Liveness and readiness probes (exec, httpGet, tcpSocket) on the injected clock.

A :class:`ProbeWorker` runs one probe of one container run: it waits
``initialDelaySeconds``, then probes every ``periodSeconds`` with ``timeoutSeconds``, and
reports a change once ``successThreshold`` successes or ``failureThreshold`` failures in
a row are reached (kubelet's defaults: 1 s timeout, 10 s period, thresholds 1 and 3). A
readiness probe starts as not ready; a liveness probe starts as alive. Edged restarts a
container whose liveness probe failed and takes readiness into the pod's Ready condition.

:class:`Prober` does the probing: ``exec`` through the runtime, ``httpGet`` with a
Twisted ``Agent`` (2xx/3xx is success, as kubelet; HTTPS is not verified, as kubelet), and
``tcpSocket`` with a TCP connect, all on the reactor it is given.
"""

import ipaddress

from twisted.internet import defer, protocol
from twisted.internet.endpoints import (
    HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint)
from twisted.internet.ssl import CertificateOptions
from twisted.logger import Logger
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

__all__ = ["Prober", "ProbeWorker", "LIVENESS", "READINESS", "probe_timing"]

LIVENESS = "liveness"
READINESS = "readiness"
USER_AGENT = b"kube-probe/1.26"


def probe_timing(probe):
    """``(initial delay, period, timeout, success threshold, failure threshold)`` with
    Kubernetes' defaults."""
    def get(key, default):
        return probe.get(key) or default
    return (probe.get("initialDelaySeconds") or 0, get("periodSeconds", 10),
            get("timeoutSeconds", 1), get("successThreshold", 1),
            get("failureThreshold", 3))


@implementer(IPolicyForHTTPS)
class _NoVerify:
    """HTTPS probes do not verify certificates (kubelet's behaviour)."""

    def creatorForNetloc(self, hostname, port):
        """TLS options that accept any server certificate."""
        return CertificateOptions(verify=False)


class Prober:
    """Runs one probe attempt; each returns a Deferred firing ``(ok, message)``."""

    log = Logger()

    def __init__(self, reactor, runtime):
        self.reactor = reactor
        self.runtime = runtime

    def probe(self, probe, container_id, host, ports):
        """One attempt of ``probe`` against a container (``ports``: named ports)."""
        timeout = probe.get("timeoutSeconds") or 1
        if probe.get("exec") is not None:
            d = self._exec(probe["exec"], container_id, timeout)
        elif probe.get("httpGet") is not None:
            d = self._http(probe["httpGet"], host, ports, timeout)
        elif probe.get("tcpSocket") is not None:
            d = self._tcp(probe["tcpSocket"], host, ports, timeout)
        else:
            return defer.succeed((False, "probe has no handler"))
        d.addTimeout(timeout + 1, self.reactor)
        d.addErrback(lambda f: (False, "probe error: {}".format(
            "timeout after {}s".format(timeout) if f.check(defer.TimeoutError,
                                                            defer.CancelledError)
            else f.getErrorMessage())))
        return d

    def _exec(self, spec, container_id, timeout):
        d = self.runtime.exec_in_container(container_id, spec.get("command") or [], timeout)

        def done(result):
            output = result.output.decode("utf-8", errors="replace").strip()[:1024]
            if result.exit_code == 0:
                return True, output
            return False, "command {} exited with {}: {}".format(
                spec.get("command"), result.exit_code, output)
        return d.addCallback(done)

    @staticmethod
    def _port(value, ports):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
        if isinstance(value, str) and value in ports:
            return ports[value]
        raise ValueError("port {!r} is not a number nor a named container port".format(value))

    def _http(self, spec, host, ports, timeout):
        try:
            port = self._port(spec.get("port"), ports)
        except ValueError as e:
            return defer.succeed((False, str(e)))
        scheme = (spec.get("scheme") or "HTTP").lower()
        target = spec.get("host") or host
        if ":" in target:
            target = "[{}]".format(target)
        path = spec.get("path") or "/"
        if not path.startswith("/"):
            path = "/" + path
        url = "{}://{}:{}{}".format(scheme, target, port, path).encode("utf-8")
        headers = Headers({b"User-Agent": [USER_AGENT]})
        for header in spec.get("httpHeaders") or ():
            if isinstance(header, dict) and header.get("name"):
                headers.addRawHeader(str(header["name"]).encode("utf-8"),
                                     str(header.get("value", "")).encode("utf-8"))
        agent = Agent(self.reactor, contextFactory=_NoVerify(), connectTimeout=timeout)
        d = agent.request(b"GET", url, headers)

        def got(response):
            code = response.code
            body = readBody(response)
            body.addErrback(lambda _: b"")

            def result(_):
                if 200 <= code < 400:
                    return True, "HTTP probe succeeded with statuscode: {}".format(code)
                return False, "HTTP probe failed with statuscode: {}".format(code)
            return body.addCallback(result)
        return d.addCallback(got)

    def _endpoint(self, host, port, timeout):
        """A TCP client endpoint; IP literals skip name resolution."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return HostnameEndpoint(self.reactor, host, port, timeout=timeout)
        kind = TCP6ClientEndpoint if address.version == 6 else TCP4ClientEndpoint
        return kind(self.reactor, host, port, timeout=timeout)

    def _tcp(self, spec, host, ports, timeout):
        try:
            port = self._port(spec.get("port"), ports)
        except ValueError as e:
            return defer.succeed((False, str(e)))
        endpoint = self._endpoint(spec.get("host") or host, port, timeout)
        d = endpoint.connect(protocol.Factory.forProtocol(protocol.Protocol))

        def connected(proto):
            proto.transport.loseConnection()
            return True, ""
        return d.addCallback(connected)


class ProbeWorker:
    """Probes one container run periodically; calls ``on_change(worker, ok, message)``
    when the probe's result changes after its thresholds."""

    log = Logger()

    def __init__(self, clock, prober, probe, kind, container_id, host, ports, on_change):
        self.clock = clock
        self.prober = prober
        self.probe = probe
        self.kind = kind
        self.container_id = container_id
        self.host = host
        self.ports = ports
        self.on_change = on_change
        (self.initial_delay, self.period, self.timeout, self.success_threshold,
         self.failure_threshold) = probe_timing(probe)
        #: Current verdict: readiness starts False, liveness True.
        self.result = kind == LIVENESS
        self.message = ""
        self.successes = 0
        self.failures = 0
        self.attempts = 0
        self._call = None
        self._running = None
        self.stopped = False

    def start(self):
        """Schedule the first attempt after the initial delay."""
        self._call = self.clock.callLater(self.initial_delay, self._run)

    def stop(self):
        """Stop probing; an attempt in flight is cancelled."""
        self.stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._running is not None:
            running, self._running = self._running, None
            running.cancel()

    def _run(self):
        self._call = None
        if self.stopped:
            return
        self.attempts += 1
        d = self.prober.probe(self.probe, self.container_id, self.host, self.ports)
        self._running = d
        d.addCallback(self._done)
        d.addErrback(self._failed)

    def _failed(self, failure):
        if failure.check(defer.CancelledError):
            return None
        self.log.failure("{kind} probe of container {cid} failed unexpectedly", failure,
                         kind=self.kind, cid=self.container_id[:12])
        return self._done((False, failure.getErrorMessage()))

    def _done(self, outcome):
        self._running = None
        if self.stopped:
            return
        ok, message = outcome
        self.message = message
        if ok:
            self.successes += 1
            self.failures = 0
            changed = not self.result and self.successes >= self.success_threshold
        else:
            self.failures += 1
            self.successes = 0
            changed = self.result and self.failures >= self.failure_threshold
        if changed:
            self.result = ok
            self.on_change(self, ok, message)
        if not self.stopped:
            self._call = self.clock.callLater(self.period, self._run)
