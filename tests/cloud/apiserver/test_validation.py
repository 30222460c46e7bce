"""Unit tests for validation (field paths and messages) and per-kind defaulting."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.apiserver import errors, validation
from kubeedge_tw.cloud.apiserver.resources import (
    PodStrategy, SecretStrategy, WorkloadStrategy, pod_qos_class)


def fields(causes):
    """The field paths of a list of causes."""
    return [c.field for c in causes]


class NameTests(SynchronousTestCase):
    """DNS-1123 names and metadata."""

    def test_dns_names(self):
        """Labels and subdomains accept lower-case names and refuse the rest."""
        self.assertEqual(validation.dns1123_label("edge-1"), [])
        self.assertTrue(validation.dns1123_label("edge.1"))
        self.assertEqual(validation.dns1123_subdomain("a.b-c"), [])
        for bad in ("A", "-a", "a-", "a_b", "", "a" * 254):
            self.assertTrue(validation.dns1123_subdomain(bad), bad)
        self.assertEqual(validation.dns1123_label("a" * 64)[0],
                         "must be no more than 63 characters")

    def test_object_meta(self):
        """A name or generateName is required; labels and finalizers are checked."""
        causes = validation.validate_object_meta({}, namespaced=True)
        self.assertEqual(fields(causes), ["metadata.name", "metadata.namespace"])
        self.assertEqual(causes[0].message, "Required value: name or generateName is required")
        causes = validation.validate_object_meta(
            {"name": "x", "namespace": "d", "labels": {"bad key": "v", "k": "bad value"},
             "finalizers": ["a/b", "a/b"]}, namespaced=True)
        self.assertEqual(fields(causes), ["metadata.labels", "metadata.labels[k]",
                                          "metadata.finalizers[1]"])
        self.assertEqual(validation.validate_object_meta({"generateName": "web-"}, False), [])


class PodValidationTests(SynchronousTestCase):
    """Pod specs: containers, images, ports."""

    def test_valid(self):
        """A minimal pod spec is valid."""
        self.assertEqual(validation.validate_pod_spec(
            {"containers": [{"name": "c", "image": "nginx"}]}), [])

    def test_containers_required(self):
        """No containers is spec.containers: Required value."""
        causes = validation.validate_pod_spec({"containers": []})
        self.assertEqual([str(c) for c in causes], ["spec.containers: Required value"])

    def test_container_problems(self):
        """Missing image, bad and duplicate names, ports out of range, bad protocols."""
        spec = {"containers": [
            {"name": "c", "ports": [{"containerPort": 0}, {"containerPort": 80,
                                                           "protocol": "HTTP"}]},
            {"name": "c", "image": "x", "ports": [{"containerPort": 70000,
                                                   "name": "TOO_LONG_NAME_HERE"}]},
            {"name": "Bad", "image": "x"}]}
        causes = validation.validate_pod_spec(spec)
        self.assertEqual(fields(causes), [
            "spec.containers[0].image", "spec.containers[0].ports[0].containerPort",
            "spec.containers[0].ports[1].protocol", "spec.containers[1].name",
            "spec.containers[1].ports[0].containerPort", "spec.containers[1].ports[0].name",
            "spec.containers[2].name"])
        self.assertEqual(str(causes[1]), "spec.containers[0].ports[0].containerPort: Invalid "
                                         "value: 0: must be between 1 and 65535, inclusive")
        self.assertEqual(str(causes[2]), 'spec.containers[0].ports[1].protocol: Unsupported '
                                         'value: "HTTP": supported values: "SCTP", "TCP", '
                                         '"UDP"')
        self.assertEqual(causes[3].reason, "FieldValueDuplicate")

    def test_volume_mounts(self):
        """Mounts must name a declared volume."""
        spec = {"containers": [{"name": "c", "image": "x", "volumeMounts": [
            {"name": "v", "mountPath": "/a"}, {"name": "w", "mountPath": "/b"}]}],
            "volumes": [{"name": "v"}]}
        self.assertEqual(fields(validation.validate_pod_spec(spec)),
                         ["spec.containers[0].volumeMounts[1].name"])

    def test_template_selector(self):
        """A workload's template labels must match its selector."""
        causes = validation.validate_pod_template(
            {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [
                {"name": "c", "image": "x"}], "restartPolicy": "Never"}},
            {"matchLabels": {"app": "b"}}, "spec.template")
        self.assertEqual(fields(causes), ["spec.template.metadata.labels",
                                          "spec.template.spec.restartPolicy"])


class TypecheckTests(SynchronousTestCase):
    """Wrongly typed JSON is a 400, as kube-apiserver's decoder makes it."""

    def test_wrong_types(self):
        """A string for a list, a bool for an int, a list for a map."""
        strategy = PodStrategy()
        for obj in ({"spec": {"containers": "x"}}, {"spec": {"containers": [
                {"name": "c", "ports": [{"containerPort": True}]}]}},
                {"metadata": {"labels": ["a"]}}, {"metadata": {"name": 5}}):
            e = self.assertRaises(errors.APIError, strategy.typecheck, obj, "Pod")
            self.assertEqual(e.code, 400)
            self.assertIn("cannot unmarshal", e.message)

    def test_secret_base64(self):
        """Secret data must be base64."""
        e = self.assertRaises(errors.APIError, SecretStrategy().typecheck,
                              {"data": {"a": "not base64!"}}, "Secret")
        self.assertEqual(e.code, 400)


class DefaultingTests(SynchronousTestCase):
    """What kubectl shows after create: the defaults."""

    def test_pod_defaults(self):
        """Restart policy, DNS policy, grace period, pull policy by tag, QoS, phase."""
        pod = {"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a", "image": "nginx"}, {"name": "b", "image": "nginx:1.25",
                                              "ports": [{"containerPort": 80}]}]}}
        PodStrategy().default(pod)
        spec = pod["spec"]
        self.assertEqual((spec["restartPolicy"], spec["dnsPolicy"],
                          spec["terminationGracePeriodSeconds"], spec["schedulerName"],
                          spec["serviceAccountName"]),
                         ("Always", "ClusterFirst", 30, "default-scheduler", "default"))
        self.assertEqual([c["imagePullPolicy"] for c in spec["containers"]],
                         ["Always", "IfNotPresent"])
        self.assertEqual(spec["containers"][1]["ports"][0]["protocol"], "TCP")
        self.assertEqual(pod["status"], {"phase": "Pending", "qosClass": "BestEffort"})
        self.assertEqual(len(spec["tolerations"]), 2)
        PodStrategy().default(pod)
        self.assertEqual(len(spec["tolerations"]), 2)

    def test_qos(self):
        """Guaranteed when requests equal limits for cpu and memory, else Burstable."""
        limits = {"cpu": "1", "memory": "1Gi"}
        self.assertEqual(pod_qos_class({"containers": [{"resources": {"limits": limits}}]}),
                         "Guaranteed")
        self.assertEqual(pod_qos_class({"containers": [{"resources": {
            "requests": {"cpu": "1"}}}]}), "Burstable")

    def test_deployment_defaults(self):
        """Replicas 1, rolling update 25%/25%, history 10, deadline 600."""
        deployment = {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "x"}]}}}}
        WorkloadStrategy().default(deployment)
        spec = deployment["spec"]
        self.assertEqual((spec["replicas"], spec["revisionHistoryLimit"],
                          spec["progressDeadlineSeconds"]), (1, 10, 600))
        self.assertEqual(spec["strategy"], {"type": "RollingUpdate", "rollingUpdate": {
            "maxUnavailable": "25%", "maxSurge": "25%"}})

    def test_secret_string_data(self):
        """stringData is folded into base64 data."""
        secret = {"stringData": {"a": "hi"}}
        SecretStrategy().default(secret)
        self.assertEqual(secret, {"type": "Opaque", "data": {"a": "aGk="}})
