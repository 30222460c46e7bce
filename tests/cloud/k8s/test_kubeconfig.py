"""kubeconfig, in-cluster and kubeAPIConfig loading; TLS policy and client assembly."""

import base64
import os

import yaml
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.k8s.client import KubeClient
from kubeedge_tw.cloud.k8s.errors import K8sConfigError
from kubeedge_tw.cloud.k8s.kubeconfig import (
    ClientConfig, FileTokenSource, KubeTLSPolicy, client_config_from, client_from_config,
    in_cluster_config, load_kubeconfig, make_kube_client, tls_policy)
from kubeedge_tw.common import tls
from kubeedge_tw.common.config import CLOUD, default_config


def b64(data):
    return base64.b64encode(data).decode()


class KubeconfigTestCase(SynchronousTestCase):
    """A PKI and helpers to write kubeconfig files in a temp directory."""

    def setUp(self):
        self.dir = os.path.abspath(self.mktemp())
        self.pki = tls.write_test_pki(self.dir, node_names=("admin",))
        self.ca = self.read(self.pki["ca"])
        self.cert = self.read(self.pki["admin_cert"])
        self.key = self.read(self.pki["admin_key"])

    @staticmethod
    def read(path):
        with open(path, "rb") as f:
            return f.read()

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "w" if isinstance(data, str) else "wb") as f:
            f.write(data)
        return path

    def kubeconfig(self, cluster=None, user=None, current="main", contexts=None, extra=None,
                   name="kubeconfig"):
        """Write a kubeconfig with one cluster/user/context named ``main``."""
        doc = {
            "apiVersion": "v1", "kind": "Config", "current-context": current,
            "clusters": [{"name": "main", "cluster": cluster if cluster is not None else {
                "server": "https://127.0.0.1:6443",
                "certificate-authority-data": b64(self.ca)}}],
            "users": [{"name": "admin", "user": user if user is not None else {
                "client-certificate-data": b64(self.cert),
                "client-key-data": b64(self.key)}}],
            "contexts": contexts or [{"name": "main", "context": {
                "cluster": "main", "user": "admin", "namespace": "kubeedge"}}],
        }
        doc.update(extra or {})
        return self.write(name, yaml.safe_dump(doc))

    def assertConfigError(self, fragment, f, *args, **kwargs):
        e = self.assertRaises(K8sConfigError, f, *args, **kwargs)
        self.assertIn(fragment, str(e))
        return e


IN_CLUSTER_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def service_account(case, token="sa-token", ca=True, namespace="kubeedge"):
    """Write a service-account directory (token, ca.crt, namespace) under ``case.dir``."""
    root = os.path.join(case.dir, "sa")
    os.makedirs(root, exist_ok=True)
    if token is not None:
        case.write("sa/token", token)
    if ca:
        case.write("sa/ca.crt", case.ca)
    if namespace:
        case.write("sa/namespace", namespace)
    return root


class KubeconfigTests(KubeconfigTestCase):
    """Reading kubeconfig files like client-go's clientcmd."""

    def test_embedded_data(self):
        """*-data fields are base64-decoded PEM; the context's namespace is kept."""
        cfg = load_kubeconfig(self.kubeconfig())
        self.assertEqual(cfg.server, "https://127.0.0.1:6443")
        self.assertEqual((cfg.ca_data, cfg.client_cert_data, cfg.client_key_data),
                         (self.ca, self.cert, self.key))
        self.assertEqual(cfg.namespace, "kubeedge")
        self.assertFalse(cfg.insecure)

    def test_file_paths_relative_to_kubeconfig(self):
        """certificate-authority / client-certificate / client-key paths are relative to
        the kubeconfig's directory."""
        path = self.kubeconfig(
            cluster={"server": "https://h:6443", "certificate-authority": "ca/rootCA.crt"},
            user={"client-certificate": "certs/admin.crt", "client-key": self.pki["admin_key"]})
        cfg = load_kubeconfig(path)
        self.assertEqual((cfg.ca_data, cfg.client_cert_data, cfg.client_key_data),
                         (self.ca, self.cert, self.key))

    def test_token(self):
        """A bearer token and no client certificate."""
        cfg = load_kubeconfig(self.kubeconfig(user={"token": "abc"}))
        self.assertEqual((cfg.token, cfg.client_cert_data), ("abc", None))
        self.assertNotIn("abc", repr(cfg))

    def test_token_file(self):
        """tokenFile is resolved and checked at load time."""
        self.write("token", "from-file\n")
        cfg = load_kubeconfig(self.kubeconfig(user={"tokenFile": "token"}))
        self.assertEqual(cfg.token_file, os.path.join(self.dir, "token"))
        self.assertConfigError("token", load_kubeconfig, self.kubeconfig(
            user={"tokenFile": "missing"}))

    def test_insecure(self):
        """insecure-skip-tls-verify without a CA."""
        cfg = load_kubeconfig(self.kubeconfig(cluster={
            "server": "https://h", "insecure-skip-tls-verify": True}))
        self.assertTrue(cfg.insecure)
        self.assertIsNone(cfg.ca_data)

    def test_named_context(self):
        """A context other than current-context can be chosen."""
        contexts = [{"name": "main", "context": {"cluster": "main", "user": "admin"}},
                    {"name": "other", "context": {"cluster": "main"}}]
        cfg = load_kubeconfig(self.kubeconfig(contexts=contexts), context="other")
        self.assertIsNone(cfg.client_cert_data)
        self.assertEqual(cfg.namespace, "default")
        self.assertIn("context other", cfg.source)

    def test_master_overrides_server(self):
        """master replaces the cluster's server URL, keeping its credentials."""
        cfg = load_kubeconfig(self.kubeconfig(), master="https://10.0.0.1:443/")
        self.assertEqual(cfg.server, "https://10.0.0.1:443")
        self.assertEqual(cfg.ca_data, self.ca)

    def test_missing_file(self):
        """A missing kubeconfig names the path."""
        path = os.path.join(self.dir, "nope")
        self.assertConfigError(path, load_kubeconfig, path)

    def test_not_yaml(self):
        """Garbage is refused."""
        self.assertConfigError("not YAML", load_kubeconfig, self.write("bad", "a: [b"))
        self.assertConfigError("not a kubeconfig", load_kubeconfig, self.write("list", "- 1"))

    def test_missing_context(self):
        """An unknown or unset context is an error naming it."""
        self.assertConfigError("no context named 'nope'", load_kubeconfig, self.kubeconfig(),
                               context="nope")
        self.assertConfigError("no current-context", load_kubeconfig,
                               self.kubeconfig(current=""))

    def test_missing_cluster_or_user(self):
        """A context naming an absent cluster or user is an error."""
        contexts = [{"name": "main", "context": {"cluster": "gone", "user": "admin"}}]
        self.assertConfigError("no cluster named 'gone'", load_kubeconfig,
                               self.kubeconfig(contexts=contexts))
        contexts = [{"name": "main", "context": {"cluster": "main", "user": "ghost"}}]
        self.assertConfigError("no user named 'ghost'", load_kubeconfig,
                               self.kubeconfig(contexts=contexts))

    def test_unreadable_certificate(self):
        """A certificate file that cannot be read is named in the error."""
        e = self.assertConfigError("users[admin].client-certificate", load_kubeconfig,
                                   self.kubeconfig(user={"client-certificate": "nope.crt",
                                                         "client-key": "nope.key"}))
        self.assertIn(os.path.join(self.dir, "nope.crt"), str(e))

    def test_conflicting_fields(self):
        """File and data both set, insecure with a CA, a cert without its key: errors."""
        self.assertConfigError("both certificate-authority and certificate-authority-data",
                               load_kubeconfig, self.kubeconfig(cluster={
                                   "server": "https://h", "certificate-authority": "x",
                                   "certificate-authority-data": b64(self.ca)}))
        self.assertConfigError("insecure-skip-tls-verify and a certificate authority",
                               load_kubeconfig, self.kubeconfig(cluster={
                                   "server": "https://h", "insecure-skip-tls-verify": True,
                                   "certificate-authority-data": b64(self.ca)}))
        self.assertConfigError("needs both", load_kubeconfig, self.kubeconfig(
            user={"client-certificate-data": b64(self.cert)}))

    def test_bad_values(self):
        """Bad base64, a missing or non-HTTP server, a non-boolean insecure flag."""
        self.assertConfigError("not valid base64", load_kubeconfig, self.kubeconfig(
            cluster={"server": "https://h", "certificate-authority-data": "%%%"}))
        self.assertConfigError("no server URL", load_kubeconfig, self.kubeconfig(cluster={}))
        self.assertConfigError("not an http(s) URL", load_kubeconfig,
                               self.kubeconfig(cluster={"server": "ftp://h"}))
        self.assertConfigError("must be true or false", load_kubeconfig, self.kubeconfig(
            cluster={"server": "https://h", "insecure-skip-tls-verify": "yes"}))

    def test_unsupported_auth(self):
        """exec / auth-provider / basic auth are refused with a clear message."""
        self.assertConfigError("exec authentication is not supported", load_kubeconfig,
                               self.kubeconfig(user={"exec": {"command": "aws"}}))


class InClusterTests(KubeconfigTestCase):
    """Service-account configuration, with an injectable root."""

    ENV = IN_CLUSTER_ENV

    def service_account(self, **kwargs):
        return service_account(self, **kwargs)

    def test_in_cluster(self):
        """Host and port from the environment, token file, CA and namespace from the root."""
        cfg = in_cluster_config(self.ENV, self.service_account())
        self.assertEqual(cfg.server, "https://10.96.0.1:443")
        self.assertEqual(cfg.ca_data, self.ca)
        self.assertEqual(cfg.token_file, os.path.join(self.dir, "sa", "token"))
        self.assertEqual(cfg.namespace, "kubeedge")

    def test_ipv6_host(self):
        """An IPv6 service host is bracketed in the URL."""
        env = dict(self.ENV, KUBERNETES_SERVICE_HOST="fd00::1")
        self.assertEqual(in_cluster_config(env, self.service_account()).server,
                         "https://[fd00::1]:443")

    def test_not_in_cluster(self):
        """Without the environment variables: a clear error."""
        self.assertConfigError("KUBERNETES_SERVICE_HOST", in_cluster_config, {},
                               self.service_account())

    def test_missing_pieces(self):
        """A missing token or CA is named."""
        self.assertConfigError("service-account token", in_cluster_config, self.ENV,
                               self.service_account(token=None))
        os.remove(os.path.join(self.dir, "sa", "ca.crt"))
        self.write("sa/token", "t")
        self.assertConfigError("service-account CA", in_cluster_config, self.ENV,
                               os.path.join(self.dir, "sa"))

    def test_empty_token(self):
        """An empty token file is an error."""
        self.assertConfigError("empty", in_cluster_config, self.ENV,
                               self.service_account(token="\n"))


class CloudConfigTests(KubeconfigTestCase):
    """kubeAPIConfig as KubeEdge's BuildConfigFromFlags(master, kubeConfig)."""

    def config(self, **kube):
        overrides = {"stateDir": self.dir}
        overrides.update({"kubeAPIConfig." + k: v for k, v in kube.items()})
        return default_config(CLOUD, overrides=overrides)

    def test_kubeconfig_relative_to_state_dir(self):
        """kubeConfig is resolved under stateDir; qps and burst come along."""
        self.kubeconfig()
        cfg = client_config_from(self.config(kubeConfig="kubeconfig", qps=5, burst=10))
        self.assertEqual((cfg.server, cfg.qps, cfg.burst), ("https://127.0.0.1:6443", 5, 10))

    def test_master_with_kubeconfig(self):
        """master overrides the kubeconfig's server."""
        self.kubeconfig()
        cfg = client_config_from(self.config(kubeConfig="kubeconfig",
                                             master="https://k8s.example:6443"))
        self.assertEqual(cfg.server, "https://k8s.example:6443")
        self.assertEqual(cfg.client_cert_data, self.cert)

    def test_master_only(self):
        """master alone: that URL, no credentials (platform trust)."""
        cfg = client_config_from(self.config(master="http://127.0.0.1:8080"))
        self.assertEqual((cfg.server, cfg.ca_data, cfg.token), ("http://127.0.0.1:8080", None,
                                                                None))

    def test_neither_means_in_cluster(self):
        """No master and no kubeConfig: the in-cluster config, or an error saying so."""
        root = service_account(self)
        cfg = client_config_from(self.config(), environ=IN_CLUSTER_ENV,
                                 service_account_dir=root)
        self.assertEqual(cfg.server, "https://10.96.0.1:443")
        self.assertConfigError("neither master nor kubeConfig", client_config_from,
                               self.config(), environ={}, service_account_dir=root)

    def test_errors_name_the_key(self):
        """A kubeconfig problem is reported under kubeAPIConfig.kubeConfig."""
        self.assertConfigError("kubeAPIConfig.kubeConfig", client_config_from,
                               self.config(kubeConfig="missing"))


class TLSAndAssemblyTests(KubeconfigTestCase):
    """The HTTPS policy and the assembled client."""

    def test_verifying_policy(self):
        """With a CA and a client certificate the policy carries both and verifies
        (the handshake itself is proven in test_client_tls)."""
        policy = tls_policy(load_kubeconfig(self.kubeconfig()))
        self.assertIsInstance(policy, KubeTLSPolicy)
        self.assertFalse(policy.insecure)
        self.assertIsNotNone(policy.trust_root)
        self.assertIsNotNone(policy.client_certificate)
        self.assertTrue(hasattr(policy.creatorForNetloc(b"127.0.0.1", 6443),
                                "clientConnectionForTLS"))

    def test_insecure_policy_warns(self):
        """insecure-skip-tls-verify logs a warning naming the kubeconfig."""
        cfg = load_kubeconfig(self.kubeconfig(cluster={"server": "https://h",
                                                       "insecure-skip-tls-verify": True}))
        with capturedLogs() as events:
            policy = tls_policy(cfg)
        warnings = [e for e in events if e.get("log_event") == "k8s_tls_insecure"]
        self.assertEqual(len(warnings), 1)
        self.assertIn(self.dir, warnings[0]["source"])
        self.assertTrue(policy.insecure)
        self.assertTrue(hasattr(policy.creatorForNetloc(b"h", 443), "clientConnectionForTLS"))

    def test_bad_pem(self):
        """Unusable certificate material is a K8sConfigError, not an OpenSSL traceback."""
        bad = ClientConfig(server="https://h", ca_data=b"junk")
        self.assertConfigError("no PEM certificate", tls_policy, bad)
        mismatched = ClientConfig(server="https://h", client_cert_data=self.cert,
                                  client_key_data=self.read(self.pki["ca_key"]))
        self.assertConfigError("not a usable pair", tls_policy, mismatched)

    def test_ca_bundle(self):
        """A CA bundle with several certificates is accepted."""
        other = tls.write_test_pki(os.path.join(self.dir, "other"))
        bundle = self.ca + self.read(other["ca"])
        self.assertIsNotNone(tls_policy(ClientConfig(server="https://h", ca_data=bundle))
                             .trust_root)

    def test_make_kube_client(self):
        """make_kube_client wires server, rate limits (overridable) and token; close()
        closes the pool."""
        reactor = MemoryReactorClock()
        cfg = ClientConfig(server="https://h:6443", token="t", qps=7, burst=9)
        client = make_kube_client(reactor, cfg)
        self.assertIsInstance(client, KubeClient)
        self.assertEqual((client.server_url, client.limiter.qps, client.limiter.burst),
                         ("https://h:6443", 7, 9))
        self.assertEqual(client._headers().getRawHeaders("authorization"), ["Bearer t"])
        self.successResultOf(client.close())
        other = make_kube_client(reactor, cfg, qps=3, burst=4)
        self.assertEqual((other.limiter.qps, other.limiter.burst), (3, 4))

    def test_client_from_config(self):
        """client_from_config goes from the cloud config to a client."""
        self.write("token", "tok")
        self.kubeconfig(user={"tokenFile": "token"})
        config = default_config(CLOUD, overrides={"stateDir": self.dir,
                                                  "kubeAPIConfig.kubeConfig": "kubeconfig"})
        client = client_from_config(MemoryReactorClock(), config)
        self.assertEqual(client._headers().getRawHeaders("authorization"), ["Bearer tok"])

    def test_token_file_rotation(self):
        """A token file is re-read after the refresh period; a failed read keeps the old."""
        clock = Clock()
        path = self.write("token", "one")
        source = FileTokenSource(clock, path, refresh=60)
        self.write("token", "two")
        self.assertEqual(source(), "one")
        clock.advance(60)
        self.assertEqual(source(), "two")
        os.remove(path)
        clock.advance(60)
        with capturedLogs() as events:
            self.assertEqual(source(), "two")
        self.assertEqual([e["log_event"] for e in events], ["k8s_token_refresh_failed"])
