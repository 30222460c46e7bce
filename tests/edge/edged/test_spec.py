"""Reading v1.Pods: quantities, image references, and bad specs turned into reasons."""

from decimal import Decimal

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.edge.edged.spec import (
    CONFIG_ERROR, INVALID_IMAGE_NAME, PodIdentityError, container_hash, default_pull_policy,
    memory_bytes, millicores, parse_image_reference, parse_pod, parse_quantity)
from tests.edge.edged.fakes import TEST_IMAGE, make_pod


def container(**kw):
    base = {"name": "main", "image": TEST_IMAGE, "command": ["sleep", "1"]}
    base.update(kw)
    return base


class QuantityTests(SynchronousTestCase):
    """Kubernetes quantities."""

    def test_forms(self):
        """Binary and decimal suffixes, milli, exponents and plain numbers parse."""
        self.assertEqual(parse_quantity("128Mi"), 128 * 2 ** 20)
        self.assertEqual(parse_quantity("1G"), 10 ** 9)
        self.assertEqual(parse_quantity("500m"), Decimal("0.5"))
        self.assertEqual(parse_quantity("1e3"), 1000)
        self.assertEqual(parse_quantity(2), 2)
        self.assertEqual(parse_quantity("0.25"), Decimal("0.25"))

    def test_units(self):
        """Memory rounds up to bytes, CPU to millicores."""
        self.assertEqual(memory_bytes("64Mi"), 67108864)
        self.assertEqual(memory_bytes("1.5Ki"), 1536)
        self.assertEqual(millicores("500m"), 500)
        self.assertEqual(millicores("0.1"), 100)
        self.assertEqual(millicores(2), 2000)

    def test_invalid(self):
        """Garbage, negative values and non-strings are ValueErrors with a reason."""
        for bad in ("abc", "12XB", "-1", "", True, None, "1 Mi"):
            self.assertRaises(ValueError, parse_quantity, bad)


class ImageReferenceTests(SynchronousTestCase):
    """Docker's reference grammar and Kubernetes' default pull policy."""

    def test_valid(self):
        """Names with registry, port, path, tag and digest split correctly."""
        self.assertEqual(parse_image_reference("busybox"), ("busybox", "", ""))
        self.assertEqual(parse_image_reference("localhost:5000/a/b:1.2"),
                         ("localhost:5000/a/b", "1.2", ""))
        digest = "sha256:" + "a" * 64
        self.assertEqual(parse_image_reference("Registry.Example/x@" + digest),
                         ("Registry.Example/x", "", digest))

    def test_invalid(self):
        """Upper case repositories, spaces, bad tags and empty names are refused."""
        for bad in ("Bad", "bad image", "a:b:c", "a/:x", "", "x@sha256:zz", "a//b", None):
            self.assertRaises(ValueError, parse_image_reference, bad)

    def test_default_pull_policy(self):
        """:latest and untagged images are Always, tagged/digest ones IfNotPresent."""
        self.assertEqual(default_pull_policy("busybox"), "Always")
        self.assertEqual(default_pull_policy("busybox:latest"), "Always")
        self.assertEqual(default_pull_policy("busybox:1.36"), "IfNotPresent")
        self.assertEqual(default_pull_policy("busybox@sha256:" + "b" * 64), "IfNotPresent")


class ParsePodTests(SynchronousTestCase):
    """parse_pod never raises for a bad spec; it says what is wrong."""

    def test_good_pod(self):
        """A good pod gives its containers with hash, limits and mounts."""
        pod = make_pod("p", restart_policy="OnFailure", grace=5, volumes=[
            {"name": "v", "emptyDir": {}}], containers=[container(
                resources={"limits": {"memory": "64Mi", "cpu": "500m"},
                           "requests": {"cpu": "250m"}},
                volumeMounts=[{"name": "v", "mountPath": "/data", "readOnly": True}],
                ports=[{"name": "http", "containerPort": 8080, "hostPort": 8080}])])
        spec = parse_pod(pod)
        self.assertIsNone(spec.error)
        self.assertEqual((spec.namespace, spec.name, spec.uid), ("default", "p", "uid-p"))
        self.assertEqual((spec.restart_policy, spec.grace_period), ("OnFailure", 5))
        main = spec.container("main")
        self.assertIsNone(main.error)
        self.assertEqual(main.mem_limit, 64 * 2 ** 20)
        self.assertEqual(main.nano_cpus, 500000000)
        self.assertEqual(main.cpu_shares, 256)
        self.assertEqual(main.ports, {"http": 8080})
        self.assertEqual(main.mounts[0].path, "/data")
        self.assertTrue(main.mounts[0].read_only)
        self.assertEqual(main.pull_policy, "Always")
        self.assertEqual(main.hash, container_hash(pod["spec"]["containers"][0]))

    def test_hash_is_stable_and_changes_with_the_spec(self):
        """The container hash ignores key order and changes when the spec changes."""
        a = {"name": "x", "image": "i", "command": ["a"]}
        b = {"command": ["a"], "image": "i", "name": "x"}
        self.assertEqual(container_hash(a), container_hash(b))
        self.assertNotEqual(container_hash(a), container_hash(dict(a, image="j")))

    def test_unnameable(self):
        """Content that is not a pod with a name raises PodIdentityError."""
        self.assertRaises(PodIdentityError, parse_pod, "nope")
        self.assertRaises(PodIdentityError, parse_pod, {"metadata": {}})

    def test_missing_uid_is_synthesised(self):
        """A pod without a uid gets a stable one derived from its name."""
        pod = make_pod("p")
        del pod["metadata"]["uid"]
        self.assertEqual(parse_pod(pod).uid, parse_pod(pod).uid)
        self.assertTrue(parse_pod(pod).uid.startswith("nouid-"))

    def test_bad_image_name(self):
        """An unparsable image is InvalidImageName on that container only."""
        spec = parse_pod(make_pod("p", containers=[container(image="Bad Image!!"),
                                                   container(name="ok")]))
        self.assertIsNone(spec.error)
        self.assertEqual(spec.container("main").error[0], INVALID_IMAGE_NAME)
        self.assertIn("Bad Image!!", spec.container("main").error[1])
        self.assertIsNone(spec.container("ok").error)

    def test_invalid_resources(self):
        """Invalid quantities and requests above limits are config errors naming the
        field."""
        spec = parse_pod(make_pod("p", containers=[container(
            resources={"limits": {"memory": "lots"}})]))
        reason, message = spec.container("main").error
        self.assertEqual(reason, CONFIG_ERROR)
        self.assertIn("resources.limits.memory", message)
        spec = parse_pod(make_pod("p", containers=[container(
            resources={"limits": {"cpu": "1"}, "requests": {"cpu": "2"}})]))
        self.assertIn("requests.cpu", spec.container("main").error[1])

    def test_unsupported_volume(self):
        """An unsupported volume type is a pod-level error naming it."""
        spec = parse_pod(make_pod("p", volumes=[{"name": "d", "nfs": {"server": "s"}}]))
        self.assertEqual(spec.error[0], CONFIG_ERROR)
        self.assertIn("unsupported volume type nfs", spec.error[1])

    def test_pod_level_problems(self):
        """Init containers, bad restart policies, no containers, duplicate names and
        malformed volumes are reported together."""
        pod = make_pod("p", restart_policy="Sometimes",
                       containers=[container(), container()],
                       volumes=[{"name": "h", "hostPath": {"path": "relative"}}])
        pod["spec"]["initContainers"] = [container(name="init")]
        message = parse_pod(pod).error[1]
        for part in ("initContainers", "restartPolicy", "duplicate container name",
                     "hostPath.path"):
            self.assertIn(part, message)
        self.assertIn("at least one container",
                      parse_pod(make_pod("q", containers=[])).error[1])

    def test_container_problems(self):
        """hostPort != containerPort, unknown mounts, bad probes and pull policies are
        container config errors."""
        cases = [
            (container(ports=[{"containerPort": 80, "hostPort": 8080}]), "hostPort"),
            (container(volumeMounts=[{"name": "nope", "mountPath": "/x"}]), "nope"),
            (container(livenessProbe={"periodSeconds": 1}), "exactly one"),
            (container(readinessProbe={"grpc": {"port": 1}}), "grpc"),
            (container(imagePullPolicy="Sometimes"), "imagePullPolicy"),
            (container(command="sleep 1"), "command"),
        ]
        for spec_container, expected in cases:
            error = parse_pod(make_pod("p", containers=[spec_container])).container(
                "main").error
            self.assertEqual(error[0], CONFIG_ERROR, expected)
            self.assertIn(expected, error[1])

    def test_projected_sources(self):
        """Projected volumes with supported sources are accepted, others refused."""
        ok = parse_pod(make_pod("p", volumes=[{"name": "kube-api-access-x", "projected": {
            "sources": [{"serviceAccountToken": {"path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt",
                                       "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                            "fieldPath": "metadata.namespace"}}]}}]}}]))
        self.assertIsNone(ok.error)
        bad = parse_pod(make_pod("p", volumes=[{"name": "x", "projected": {
            "sources": [{"clusterTrustBundle": {}}]}}]))
        self.assertIn("not supported", bad.error[1])
