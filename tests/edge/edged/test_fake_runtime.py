"""The in-memory FakeRuntime passes the runtime contract the real DockerRuntime passes
(``tests.integration.test_edged_docker``), plus checks of its test controls."""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from kubeedge_tw.edge.edged.runtime import (
    ContainerConfig, IContainerRuntime, ImageNotFound, RuntimeUnavailable)
from tests.edge.edged.contract import RuntimeContract
from tests.edge.edged.fakes import TEST_IMAGE, FakeRuntime


class FakeRuntimeContractTests(RuntimeContract, TestCase):
    """The runtime contract, run against FakeRuntime on a Clock."""

    def setUp(self):
        self.clock = Clock()
        self.runtime = FakeRuntime(self.clock)
        self.runtime.add_image(TEST_IMAGE)
        self.image = TEST_IMAGE
        self.labels = {"io.kubeedge-tw.test": "1"}
        self.addCleanup(self.runtime.shutdown)

    def settle(self):
        """One second of the fake clock."""
        self.clock.advance(1)
        return defer.succeed(None)


class FakeRuntimeControlTests(SynchronousTestCase):
    """The fake's own controls behave as the tests that use them expect."""

    def setUp(self):
        self.clock = Clock()
        self.runtime = FakeRuntime(self.clock)
        self.runtime.add_image(TEST_IMAGE)
        self.addCleanup(self.runtime.shutdown)

    def start(self, command):
        """Create and start a container running ``command``; its id."""
        config = ContainerConfig(name="c-" + str(len(self.runtime.containers)),
                                 image=TEST_IMAGE, labels={"a": "b"}, command=command)
        cid = self.successResultOf(self.runtime.create_container(config))
        self.successResultOf(self.runtime.start_container(cid))
        return cid

    def test_provides_interface(self):
        """FakeRuntime provides IContainerRuntime."""
        self.assertTrue(verifyObject(IContainerRuntime, self.runtime))

    def test_sleep_runs_on_the_clock(self):
        """``sleep N`` then ``exit M`` exits with M after N seconds of the clock."""
        cid = self.start(["sh", "-c", "sleep 5; exit 4"])
        self.clock.advance(4.9)
        self.assertTrue(self.successResultOf(self.runtime.inspect_container(cid)).running)
        self.clock.advance(0.1)
        info = self.successResultOf(self.runtime.inspect_container(cid))
        self.assertEqual((info.state, info.exit_code), ("exited", 4))

    def test_exit_and_running(self):
        """``exit()`` ends a running container; ``running()`` lists by labels."""
        cid = self.start(["sleep", "100"])
        self.assertEqual(self.runtime.running(a="b"), [cid])
        self.runtime.exit(cid, 2, oom=True)
        info = self.successResultOf(self.runtime.inspect_container(cid))
        self.assertEqual((info.exit_code, info.oom_killed), (2, True))
        self.assertEqual(self.runtime.running(), [])

    def test_outage(self):
        """With ``available`` False every call fails with RuntimeUnavailable."""
        self.runtime.available = False
        self.failureResultOf(self.runtime.version(), RuntimeUnavailable)
        self.failureResultOf(self.runtime.list_containers({}), RuntimeUnavailable)

    def test_registry_pull(self):
        """A reference put in ``registry`` can be pulled and is then local."""
        self.runtime.registry["example/app:1"] = 100
        info = self.successResultOf(self.runtime.pull_image("example/app:1"))
        self.assertEqual(info.size, 100)
        self.assertIsNotNone(self.successResultOf(self.runtime.inspect_image("example/app:1")))

    def test_exec_handler_and_files(self):
        """``exec_handler`` scripts exec; ``files`` feed cat and test."""
        cid = self.start(["sleep", "100"])
        self.runtime.files["/tmp/ok"] = b"yes"
        cat = self.successResultOf(self.runtime.exec_in_container(cid, ["cat", "/tmp/ok"], 1))
        self.assertEqual(cat.output, b"yes")
        test = self.successResultOf(self.runtime.exec_in_container(
            cid, ["test", "-f", "/tmp/nope"], 1))
        self.assertEqual(test.exit_code, 1)
        self.runtime.exec_handler = lambda info, argv: type(cat)(7)
        seven = self.successResultOf(self.runtime.exec_in_container(cid, ["true"], 1))
        self.assertEqual(seven.exit_code, 7)
        self.assertEqual(self.runtime.count("exec_in_container"), 3)

    def test_hold_and_release(self):
        """Held calls take effect only when released, oldest first; release() with no
        count completes the rest and stops holding."""
        self.runtime.hold("create_container", "start_container")
        config = ContainerConfig(name="held", image=TEST_IMAGE, labels={"a": "b"},
                                 command=["sleep", "100"])
        created = self.runtime.create_container(config)
        self.assertNoResult(created)
        self.assertEqual(self.runtime.containers, {})
        self.assertEqual([m for m, _ in self.runtime.in_flight()], ["create_container"])
        self.assertEqual(self.runtime.release(1), 1)
        cid = self.successResultOf(created)
        started = self.runtime.start_container(cid)
        self.assertNoResult(started)
        self.assertEqual(self.runtime.running(), [])
        self.assertEqual(self.runtime.release(), 1)
        self.successResultOf(started)
        self.assertEqual(self.runtime.running(), [cid])
        self.assertEqual(self.runtime.holding, set())
        self.successResultOf(self.runtime.start_container(cid))  # no longer held

    def test_held_call_given_up(self):
        """A held call its caller cancelled is dropped without effect, and a held call
        that fails errbacks as the direct call would."""
        self.runtime.hold("create_container")
        config = ContainerConfig(name="gone", image=TEST_IMAGE, labels={}, command=["true"])
        abandoned = self.runtime.create_container(config)
        abandoned.cancel()
        self.failureResultOf(abandoned, defer.CancelledError)
        missing = self.runtime.create_container(ContainerConfig(
            name="x", image="no/such:image", labels={}, command=["true"]))
        self.assertEqual([a.name for _, a in self.runtime.in_flight("create_container")],
                         ["x"])
        self.assertEqual(self.runtime.release(), 1)
        self.assertEqual(self.runtime.containers, {})
        self.failureResultOf(missing, ImageNotFound)
