"""Probes: the worker's timing and thresholds on a Clock, and the prober's exec, httpGet
and tcpSocket checks (HTTP and TCP over iosim on a MemoryReactorClock)."""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.test.iosim import ConnectionCompleter
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import resource, server

from kubeedge_tw.edge.edged.probes import LIVENESS, READINESS, Prober, ProbeWorker, probe_timing
from kubeedge_tw.edge.edged.runtime import ContainerConfig
from tests.edge.edged.fakes import TEST_IMAGE, FakeRuntime


class ScriptedProber:
    """A prober whose answers a test lists; it records when it was asked."""

    def __init__(self, clock, answers):
        self.clock = clock
        self.answers = list(answers)
        self.asked = []
        self.pending = []

    def probe(self, probe, container_id, host, ports):
        """The next scripted answer (``None`` means one that never comes)."""
        self.asked.append(self.clock.seconds())
        answer = self.answers.pop(0) if self.answers else (True, "")
        if answer is None:
            d = defer.Deferred()
            self.pending.append(d)
            return d
        return defer.succeed(answer)


class ProbeWorkerTests(SynchronousTestCase):
    """Timing and thresholds of one probe on the clock."""

    def setUp(self):
        self.clock = Clock()
        self.changes = []

    def worker(self, answers, kind=READINESS, **probe):
        """A started ProbeWorker over a ScriptedProber with ``answers``."""
        prober = ScriptedProber(self.clock, answers)
        spec = dict({"exec": {"command": ["true"]}}, **probe)
        worker = ProbeWorker(self.clock, prober, spec, kind, "cid", "127.0.0.1", {},
                             lambda w, ok, message: self.changes.append((ok, message)))
        worker.start()
        return worker, prober

    def test_defaults(self):
        """Kubernetes' defaults: no delay, 10 s period, 1 s timeout, thresholds 1 and 3."""
        self.assertEqual(probe_timing({}), (0, 10, 1, 1, 3))
        self.assertEqual(probe_timing({"initialDelaySeconds": 5, "periodSeconds": 2,
                                       "failureThreshold": 1}), (5, 2, 1, 1, 1))

    def test_readiness_timing_and_thresholds(self):
        """The first probe waits the initial delay, then one per period; readiness starts
        False and turns True after successThreshold successes."""
        worker, prober = self.worker([(False, "no"), (True, ""), (True, "")],
                                     initialDelaySeconds=3, periodSeconds=2,
                                     successThreshold=2)
        self.assertFalse(worker.result)
        self.clock.advance(2.9)
        self.assertEqual(prober.asked, [])
        self.clock.advance(0.1)
        self.clock.advance(2)
        self.clock.advance(2)
        self.assertEqual(prober.asked, [3, 5, 7])
        self.assertEqual(self.changes, [(True, "")])
        self.assertTrue(worker.result)
        worker.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_liveness_failure_threshold(self):
        """Liveness starts alive and reports one failure after failureThreshold in a
        row; a success in between resets the count."""
        worker, prober = self.worker([(False, "a"), (True, ""), (False, "b"), (False, "c"),
                                      (False, "d")], kind=LIVENESS, periodSeconds=1,
                                     failureThreshold=2)
        self.assertTrue(worker.result)
        self.clock.pump([1] * 5)
        self.assertEqual(self.changes, [(False, "c")])
        worker.stop()

    def test_stop_cancels_in_flight(self):
        """Stopping cancels an attempt in flight and the next one."""
        worker, prober = self.worker([None], periodSeconds=1)
        self.clock.advance(0)
        self.assertEqual(len(prober.pending), 1)
        worker.stop()
        self.assertTrue(prober.pending[0].called)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class _Hung:
    """A runtime whose exec never answers (to test the prober's timeout)."""

    def exec_in_container(self, container_id, argv, timeout):
        """A Deferred that never fires."""
        return defer.Deferred()


class ProberExecTests(SynchronousTestCase):
    """Exec probes through the runtime."""

    def setUp(self):
        self.clock = Clock()
        self.runtime = FakeRuntime(self.clock)
        self.runtime.add_image(TEST_IMAGE)
        self.addCleanup(self.runtime.shutdown)
        cid = self.successResultOf(self.runtime.create_container(ContainerConfig(
            name="c", image=TEST_IMAGE, labels={}, command=["sleep", "100"])))
        self.successResultOf(self.runtime.start_container(cid))
        self.cid = cid
        self.prober = Prober(self.clock, self.runtime)

    def test_exit_codes(self):
        """Exit 0 is success; another code is failure with the output."""
        ok = self.successResultOf(self.prober.probe({"exec": {"command": ["true"]}},
                                                    self.cid, "127.0.0.1", {}))
        self.assertTrue(ok[0])
        bad = self.successResultOf(self.prober.probe(
            {"exec": {"command": ["cat", "/nope"]}}, self.cid, "127.0.0.1", {}))
        self.assertFalse(bad[0])
        self.assertIn("exited with 1", bad[1])

    def test_timeout(self):
        """A probe that does not answer fails after its timeout on the clock."""
        prober = Prober(self.clock, _Hung())
        d = prober.probe({"exec": {"command": ["x"]}, "timeoutSeconds": 2}, "c", "h", {})
        self.assertNoResult(d)
        self.clock.advance(3)
        ok, message = self.successResultOf(d)
        self.assertFalse(ok)
        self.assertIn("timeout after 2s", message)


class _Pages(resource.Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.requests = []

    def render_GET(self, request):
        """200, except /bad (500) and /moved (302)."""
        self.requests.append(request)
        if request.path == b"/bad":
            request.setResponseCode(500)
        if request.path == b"/moved":
            request.setResponseCode(302)
        return b"body"


class ProberNetworkTests(SynchronousTestCase):
    """httpGet and tcpSocket probes over iosim on a MemoryReactorClock."""

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.pages = _Pages()
        self.reactor.listenTCP(8080, server.Site(self.pages))
        self.completer = ConnectionCompleter(self.reactor)
        self.prober = Prober(self.reactor, runtime=None)

    def complete(self, d):
        """Complete the pending connection over iosim; the probe's result."""
        pump = self.completer.succeedOnce()
        self.assertIsNotNone(pump, "no connection attempt")
        pump.flush()
        self.reactor.advance(0)
        pump.flush()
        return self.successResultOf(d)

    def test_http_codes(self):
        """2xx and 3xx are success, others failure; named ports and headers are used."""
        d = self.prober.probe({"httpGet": {"path": "/ok", "port": "web", "httpHeaders": [
            {"name": "X-Probe", "value": "1"}]}}, "c", "127.0.0.1", {"web": 8080})
        self.assertEqual(self.complete(d)[0], True)
        request = self.pages.requests[-1]
        self.assertEqual(request.getHeader(b"x-probe"), b"1")
        self.assertEqual(request.getHeader(b"user-agent"), b"kube-probe/1.26")
        self.assertEqual(self.complete(self.prober.probe(
            {"httpGet": {"path": "/moved", "port": 8080}}, "c", "127.0.0.1", {}))[0], True)
        ok, message = self.complete(self.prober.probe(
            {"httpGet": {"path": "bad", "port": 8080}}, "c", "127.0.0.1", {}))
        self.assertFalse(ok)
        self.assertIn("500", message)

    def test_unknown_port_name(self):
        """A port name the container does not declare fails without connecting."""
        ok, message = self.successResultOf(self.prober.probe(
            {"httpGet": {"port": "nope"}}, "c", "127.0.0.1", {}))
        self.assertFalse(ok)
        self.assertIn("nope", message)

    def test_tcp(self):
        """A TCP connect that succeeds is success; a refused one is failure."""
        self.assertEqual(self.complete(self.prober.probe(
            {"tcpSocket": {"port": 8080}}, "c", "127.0.0.1", {}))[0], True)
        d = self.prober.probe({"tcpSocket": {"port": 9}}, "c", "127.0.0.1", {})
        self.completer.failOnce()
        ok, message = self.successResultOf(d)
        self.assertFalse(ok)
