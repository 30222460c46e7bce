"""Unit tests for the API server service: start-up, when_ready, stop, and building it
from the cloud config; plus the shipped CRD manifests."""

import os

import yaml
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.apiserver import (
    KUBECONFIG_NAME, APIServerService, APIServerSetupError, create_apiserver, memory)
from kubeedge_tw.cloud.apiserver.auth import ensure_credentials
from kubeedge_tw.cloud.apiserver.crds import CRD_FILES, KUBEEDGE_CRDS
from kubeedge_tw.common import pki
from kubeedge_tw.common.config import CLOUD, default_config
from kubeedge_tw.common.core import Core
from tests.cloud.apiserver.fakes import sync_store

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


class FakePort:
    """What ``listen`` returns."""

    def __init__(self, port=16443):
        self.port = port
        self.stopped = False

    def getHost(self):
        return IPv4Address("TCP", "127.0.0.1", self.port)

    def stopListening(self):
        self.stopped = True
        return defer.succeed(None)


class ServiceTests(SynchronousTestCase):
    """APIServerService on a synchronous store and a fake listener."""

    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        ca_key, ca_cert = pki.create_ca()
        self.ca = pki.write_pem(os.path.join(self.dir, "ca.crt"), pki.cert_pem(ca_cert))
        self.ca_key = pki.write_pem(os.path.join(self.dir, "ca.key"), pki.key_pem(ca_key),
                                    private=True)
        self.creds, _ = ensure_credentials(os.path.join(self.dir, "apiserver"), self.ca,
                                           self.ca_key)
        self.store, self.clock = sync_store(os.path.join(self.dir, "api.db"))
        self.sites = []
        self.port = FakePort()

    def listen(self, site):
        self.sites.append(site)
        return defer.succeed(self.port)

    def service(self, listen=None):
        return APIServerService(self.clock, self.store, listen or self.listen, self.creds,
                                kubeconfig_path=os.path.join(self.dir, KUBECONFIG_NAME))

    def test_start_ready_stop(self):
        """Start opens the store, listens and writes the kubeconfig; when_ready fires;
        stop closes the port and the store's pool."""
        service = self.service()
        waiting = service.when_ready()
        self.successResultOf(service.startService())
        self.assertIs(self.successResultOf(waiting), service)
        self.assertIs(self.successResultOf(service.when_ready()), service)
        self.assertEqual(len(self.sites), 1)
        with open(os.path.join(self.dir, KUBECONFIG_NAME)) as f:
            config = yaml.safe_load(f)
        self.assertEqual(config["clusters"][0]["cluster"]["server"], "https://127.0.0.1:16443")
        self.assertEqual(os.stat(os.path.join(self.dir, KUBECONFIG_NAME)).st_mode & 0o777,
                         0o600)
        pool = self.store.pool
        self.successResultOf(service.stopService())
        self.assertTrue(self.port.stopped)
        self.assertTrue(pool.threadpool.joined)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_listen_failure(self):
        """A listen failure is kept, reported to when_ready, and stop still closes the
        store."""
        service = self.service(listen=lambda site: defer.fail(OSError("address in use")))
        waiting = service.when_ready()
        self.successResultOf(service.startService())
        self.failureResultOf(waiting, OSError)
        self.failureResultOf(service.when_ready(), OSError)
        self.assertIsNotNone(service.start_failure)
        self.successResultOf(service.stopService())
        self.assertIsNone(self.store.pool)
        # The failure was logged (critically, with its traceback).
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_stop_before_ready_fails_waiters(self):
        """Waiters are failed when the service stops before it served."""
        service = self.service(listen=lambda site: defer.Deferred())
        service.startService()
        waiting = service.when_ready()
        service.ready = None  # the listen never answers; stop without waiting for it
        self.successResultOf(service.stopService())
        self.failureResultOf(waiting, RuntimeError)


class CreateTests(SynchronousTestCase):
    """create_apiserver builds the service from the cloud config."""

    def test_from_config(self):
        """The CA is created like CloudHub does, credentials and paths follow the config."""
        state = os.path.abspath(self.mktemp())
        config = default_config(CLOUD, overrides={"stateDir": state,
                                                  "modules.apiServer.port": 16999})
        from twisted.internet.task import Clock
        core = Core("kubeedge-cloud", Clock(), config)
        service = create_apiserver(core, config)
        self.assertIsInstance(service, APIServerService)
        self.assertEqual(service.kubeconfig_path, os.path.join(state, KUBECONFIG_NAME))
        self.assertEqual(service.store.path, os.path.join(state, "apiserver.db"))
        self.assertTrue(os.path.exists(config.resolve_path(config.modules.cloudHub.tlsCAFile)))
        self.assertTrue(os.path.exists(os.path.join(state, "apiserver", "admin.crt")))

    def test_bad_ca(self):
        """An unusable CA is a setup error naming the problem."""
        state = os.path.abspath(self.mktemp())
        config = default_config(CLOUD, overrides={"stateDir": state})
        ca = config.resolve_path(config.modules.cloudHub.tlsCAFile)
        os.makedirs(os.path.dirname(ca))
        with open(ca, "w") as f:
            f.write("not a certificate")
        from twisted.internet.task import Clock
        e = self.assertRaises(APIServerSetupError, create_apiserver,
                              Core("kubeedge-cloud", Clock(), config), config)
        self.assertIn("apiServer certificates", str(e))


class ManifestTests(SynchronousTestCase):
    """The CRDs installed at start are the ones shipped in conf/crds/."""

    def test_conf_crds_match(self):
        """Each conf/crds file holds exactly the CRD the server installs."""
        for crd, name in zip(KUBEEDGE_CRDS, CRD_FILES):
            with open(os.path.join(TOP, "conf", "crds", name)) as f:
                self.assertEqual(yaml.safe_load(f), crd, name)
        self.assertEqual(sorted(os.listdir(os.path.join(TOP, "conf", "crds"))),
                         sorted(CRD_FILES))


class MemoryTests(SynchronousTestCase):
    """Releasing memory after big responses."""

    def test_release(self):
        """On glibc malloc_trim runs; elsewhere it is a no-op; either way no error."""
        self.assertIn(memory.release_memory(), (True, False))
