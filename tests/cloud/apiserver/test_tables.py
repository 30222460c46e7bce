"""Unit tests for server-side table printing (what kubectl get shows)."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.cloud.apiserver import tables
from kubeedge_tw.cloud.apiserver.tables import (
    build_table, custom_resource_table, format_time, human_duration, parse_time)

NOW = parse_time("2024-05-01T12:00:00Z")


def ago(seconds):
    """An RFC 3339 timestamp ``seconds`` before NOW."""
    return format_time(NOW - seconds)


def cells(table, obj):
    """The cells of ``obj``'s row keyed by column name."""
    row = table.row(obj, NOW)
    return {c.name: v for c, v in zip(table.columns, row)}


class HumanDurationTests(SynchronousTestCase):
    """duration.HumanDuration's buckets."""

    def test_buckets(self):
        """Seconds, minutes, hours, days and years print like kubectl's AGE."""
        cases = [(-5, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (125, "2m5s"),
                 (600, "10m"), (3 * 3600 - 1, "179m"), (3 * 3600, "3h"), (7 * 3600 + 60,
                                                                          "7h1m"),
                 (30 * 3600, "30h"), (50 * 3600, "2d2h"), (8 * 86400, "8d"),
                 (800 * 86400, "2y70d"), (9 * 365 * 86400, "9y")]
        for seconds, text in cases:
            self.assertEqual(human_duration(seconds), text, seconds)

    def test_age_unknown(self):
        """A missing timestamp is <unknown>."""
        self.assertEqual(tables.age(None, NOW), "<unknown>")


class NodeTableTests(SynchronousTestCase):
    """kubectl get nodes: STATUS from the Ready condition, ROLES from labels."""

    def node(self, ready=None, unschedulable=False, labels=None):
        conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
        return {"metadata": {"name": "edge-1", "creationTimestamp": ago(300),
                             "labels": labels or {}},
                "spec": {"unschedulable": unschedulable},
                "status": {"conditions": conditions, "nodeInfo": {"kubeletVersion": "v1.31"},
                           "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]}}

    def test_ready_roles_age_version(self):
        """Ready node with edge and agent roles, age 5m, kubelet version."""
        row = cells(tables.NODE_TABLE, self.node("True", labels={
            "node-role.kubernetes.io/edge": "", "node-role.kubernetes.io/agent": "",
            "kubernetes.io/role": "worker"}))
        self.assertEqual((row["Name"], row["Status"], row["Roles"], row["Age"],
                          row["Version"]), ("edge-1", "Ready", "agent,edge,worker", "5m",
                                            "v1.31"))
        self.assertEqual(row["Internal-IP"], "10.0.0.5")
        self.assertEqual(row["External-IP"], "<none>")
        self.assertEqual(row["OS-Image"], "<unknown>")

    def test_not_ready_unknown_cordoned(self):
        """NotReady, Unknown without a Ready condition, SchedulingDisabled when cordoned,
        <none> without roles."""
        self.assertEqual(cells(tables.NODE_TABLE, self.node("False"))["Status"], "NotReady")
        self.assertEqual(cells(tables.NODE_TABLE, self.node())["Status"], "Unknown")
        row = cells(tables.NODE_TABLE, self.node("True", unschedulable=True))
        self.assertEqual(row["Status"], "Ready,SchedulingDisabled")
        self.assertEqual(row["Roles"], "<none>")

    def test_wide_columns_have_priority(self):
        """The -o wide columns are priority 1, the default ones 0."""
        wide = [c.name for c in tables.NODE_TABLE.columns if c.priority == 1]
        self.assertEqual(wide, ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version",
                                "Container-Runtime"])


class PodTableTests(SynchronousTestCase):
    """kubectl get pods -o wide."""

    def pod(self, status=None, deleting=False, node=""):
        meta = {"name": "p", "creationTimestamp": ago(30)}
        if deleting:
            meta["deletionTimestamp"] = ago(0)
        return {"metadata": meta, "spec": {"nodeName": node, "containers": [
            {"name": "a"}, {"name": "b"}]}, "status": status or {"phase": "Pending"}}

    def test_pending(self):
        """A new pod: 0/2 Pending, no IP or node."""
        row = cells(tables.POD_TABLE, self.pod())
        self.assertEqual([row[k] for k in ("Ready", "Status", "Restarts", "Age", "IP", "Node",
                                           "Nominated Node", "Readiness Gates")],
                         ["0/2", "Pending", "0", "30s", "<none>", "<none>", "<none>",
                          "<none>"])

    def test_running_with_restarts(self):
        """Ready running containers count; restarts show when the last one happened."""
        status = {"phase": "Running", "podIPs": [{"ip": "10.1.0.7"}], "containerStatuses": [
            {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}},
             "lastState": {"terminated": {"finishedAt": ago(120), "exitCode": 1}}},
            {"name": "b", "ready": False, "restartCount": 0, "state": {"running": {}}}]}
        row = cells(tables.POD_TABLE, self.pod(status, node="edge-1"))
        self.assertEqual((row["Ready"], row["Status"], row["Restarts"], row["IP"],
                          row["Node"]), ("1/2", "Running", "2 (2m ago)", "10.1.0.7",
                                         "edge-1"))

    def test_waiting_reason_and_terminating(self):
        """A waiting reason replaces the phase; a deletion timestamp shows Terminating."""
        status = {"phase": "Pending", "containerStatuses": [
            {"name": "a", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
        self.assertEqual(cells(tables.POD_TABLE, self.pod(status))["Status"],
                         "ImagePullBackOff")
        self.assertEqual(cells(tables.POD_TABLE, self.pod(deleting=True))["Status"],
                         "Terminating")

    def test_init_containers(self):
        """An unfinished init container shows Init:n/m."""
        pod = self.pod({"phase": "Pending", "initContainerStatuses": [
            {"name": "i", "state": {"running": {}}}]})
        pod["spec"]["initContainers"] = [{"name": "i"}]
        self.assertEqual(cells(tables.POD_TABLE, pod)["Status"], "Init:0/1")


class OtherTablesTests(SynchronousTestCase):
    """Deployments, services, config and the table envelope."""

    def test_deployment(self):
        """READY is ready/desired, then UP-TO-DATE and AVAILABLE; wide adds the template."""
        deployment = {"metadata": {"name": "d", "creationTimestamp": ago(3600)},
                      "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "x"}},
                               "template": {"spec": {"containers": [
                                   {"name": "c", "image": "nginx"}]}}},
                      "status": {"readyReplicas": 1, "updatedReplicas": 2,
                                 "availableReplicas": 1}}
        self.assertEqual(tables.DEPLOYMENT_TABLE.row(deployment, NOW),
                         ["d", "1/3", 2, 1, "60m", "c", "nginx", "app=x"])

    def test_service_and_config(self):
        """Service ports and IPs; config map and secret data counts."""
        service = {"metadata": {"name": "s"}, "spec": {
            "type": "NodePort", "clusterIP": "10.96.0.10", "selector": {"app": "x"},
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                      {"port": 53, "protocol": "UDP"}]}}
        row = cells(tables.SERVICE_TABLE, service)
        self.assertEqual((row["Type"], row["Cluster-IP"], row["External-IP"], row["Port(s)"],
                          row["Selector"]),
                         ("NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "app=x"))
        self.assertEqual(cells(tables.CONFIGMAP_TABLE, {"metadata": {"name": "c"},
                                                        "data": {"a": "1", "b": "2"}})["Data"], 2)
        self.assertEqual(cells(tables.SECRET_TABLE, {"metadata": {"name": "s"},
                                                     "type": "Opaque", "data": {"a": ""}})
                         ["Type"], "Opaque")

    def test_event(self):
        """Events show LAST SEEN, TYPE, REASON, OBJECT and MESSAGE."""
        event = {"metadata": {"name": "e"}, "type": "Warning", "reason": "Failed",
                 "message": " boom ", "lastTimestamp": ago(60), "count": 3,
                 "involvedObject": {"kind": "Pod", "name": "p"}}
        row = cells(tables.EVENT_TABLE, event)
        self.assertEqual((row["Last Seen"], row["Object"], row["Message"], row["Count"]),
                         ("60s", "pod/p", "boom", 3))

    def test_custom_resource_columns(self):
        """CRD printer columns by JSON path; date columns print as ages; Age by default."""
        table = custom_resource_table([
            {"name": "Model", "type": "string", "jsonPath": ".spec.deviceModelRef.name"},
            {"name": "Seen", "type": "date", "jsonPath": ".status.lastSeen"},
            {"name": "Missing", "type": "string", "jsonPath": ".spec.nope"}])
        obj = {"metadata": {"name": "d"}, "spec": {"deviceModelRef": {"name": "m"}},
               "status": {"lastSeen": ago(10)}}
        self.assertEqual(table.row(obj, NOW), ["d", "m", "10s", None])
        default = custom_resource_table(None)
        self.assertEqual([c.name for c in default.columns], ["Name", "Age"])

    def test_table_envelope(self):
        """A Table carries column definitions, rows with partial metadata, and the
        list's resourceVersion; headers can be left out (later watch events)."""
        obj = {"metadata": {"name": "c", "namespace": "default"}, "data": {}}
        table = build_table(tables.CONFIGMAP_TABLE, [obj], NOW, resource_version="7")
        self.assertEqual(table["kind"], "Table")
        self.assertEqual(table["metadata"]["resourceVersion"], "7")
        self.assertEqual(table["columnDefinitions"][0]["name"], "Name")
        self.assertEqual(table["rows"][0]["object"]["kind"], "PartialObjectMetadata")
        self.assertEqual(table["rows"][0]["object"]["metadata"]["namespace"], "default")
        bare = build_table(tables.CONFIGMAP_TABLE, [obj], NOW, include_object="None",
                           headers=False)
        self.assertIsNone(bare["columnDefinitions"])
        self.assertNotIn("object", bare["rows"][0])
