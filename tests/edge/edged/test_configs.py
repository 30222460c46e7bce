"""Query answers in every shape, the object cache, and container environments."""

import base64
import json

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.common import names
from kubeedge_tw.common.message import new_message
from kubeedge_tw.edge.edged.configs import (
    ConfigError, ObjectCache, QueryFailed, expand, object_data, objects_from_content,
    objects_from_reply, resolve_env)
from tests.edge.edged.fakes import make_pod

CM = {"metadata": {"name": "cfg", "namespace": "default"}, "data": {"A": "1", "b.c": "2"}}
SECRET = {"metadata": {"name": "s"}, "data": {"pw": base64.b64encode(b"hunter2").decode()}}


class ReplyShapeTests(SynchronousTestCase):
    """objects_from_content/objects_from_reply accept every shape an answer comes in."""

    def test_list_of_json_strings(self):
        """KubeEdge's list of JSON strings gives the objects; an empty list none."""
        self.assertEqual(objects_from_content([json.dumps(CM)]), [CM])
        self.assertEqual(objects_from_content([]), [])
        self.assertEqual(objects_from_content(None), [])

    def test_bare_object_and_wrapper(self):
        """A bare object and cloudcore's {"Object","Err"} wrapper give the object."""
        self.assertEqual(objects_from_content(CM), [CM])
        self.assertEqual(objects_from_content({"Object": CM, "Err": None}), [CM])
        self.assertEqual(objects_from_content(json.dumps([CM])), [CM])

    def test_status(self):
        """A 404 Status is "not found"; another failure Status or an Err raises."""
        self.assertEqual(objects_from_content({"kind": "Status", "code": 404}), [])
        self.assertEqual(objects_from_content({"kind": "Status", "reason": "NotFound"}), [])
        self.assertRaises(QueryFailed, objects_from_content,
                          {"kind": "Status", "code": 500, "message": "boom"})
        self.assertRaises(QueryFailed, objects_from_content, {"Object": None, "Err": "x"})
        self.assertRaises(QueryFailed, objects_from_content, "not json")

    def test_error_reply(self):
        """An ``error`` reply raises QueryFailed with its content."""
        request = new_message("edged", "meta", "query", "default/configmap/cfg")
        reply = request.replace(operation=names.OP_ERROR, content="cloud is disconnected")
        e = self.assertRaises(QueryFailed, objects_from_reply, reply)
        self.assertIn("disconnected", str(e))
        ok = request.replace(operation=names.OP_RESPONSE, content=[json.dumps(CM)])
        self.assertEqual(objects_from_reply(ok), [CM])


class ObjectCacheTests(SynchronousTestCase):
    """The cache asks once, keeps what it found, and applies pushes."""

    def test_query_once_then_cached(self):
        """A found object is asked for once; not found is asked again next time."""
        asked = []

        def query(key):
            asked.append(key)
            return defer.succeed([CM] if key.endswith("cfg") else [])
        cache = ObjectCache(query)
        first = self.successResultOf(defer.Deferred.fromCoroutine(
            cache.get("default", "configmap", "cfg")))
        self.assertEqual(first, CM)
        self.successResultOf(defer.Deferred.fromCoroutine(
            cache.get("default", "configmap", "cfg")))
        self.assertIsNone(self.successResultOf(defer.Deferred.fromCoroutine(
            cache.get("default", "configmap", "none"))))
        self.successResultOf(defer.Deferred.fromCoroutine(
            cache.get("default", "configmap", "none")))
        self.assertEqual(asked, ["default/configmap/cfg", "default/configmap/none",
                                 "default/configmap/none"])
        cache.put("default/configmap/cfg", {"data": {}})
        self.assertTrue(cache.cached("default/configmap/cfg"))
        cache.remove("default/configmap/cfg")
        self.assertFalse(cache.cached("default/configmap/cfg"))


class EnvTests(SynchronousTestCase):
    """Environment building, as kubelet does it."""

    def resolve(self, container, objects=None):
        objects = objects if objects is not None else {
            ("configmap", "cfg"): CM, ("secret", "s"): SECRET}

        async def lookup(namespace, rtype, name):
            return objects.get((rtype, name))
        pod = make_pod("p", containers=[container])
        d = defer.Deferred.fromCoroutine(resolve_env(
            pod, container, lookup, "192.0.2.10", "edge-1",
            {"cpu": "2", "memory": str(4 * 2 ** 30)}))
        return d

    def test_env_from_and_values(self):
        """envFrom (with prefix, valid names only) comes first, env overrides it,
        $(VAR) expands."""
        env = self.successResultOf(self.resolve({
            "name": "main",
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "X_"},
                        {"secretRef": {"name": "s"}}],
            "env": [{"name": "X_A", "value": "over"},
                    {"name": "PW2", "value": "$(pw)-$(NOPE)-$$(pw)"},
                    {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                    {"name": "NAME", "valueFrom": {"fieldRef": {
                        "fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {
                        "fieldPath": "metadata.labels['app']"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {
                        "resource": "limits.memory", "divisor": "1Mi"}}}]}))
        env = dict(env)
        self.assertEqual(env["X_A"], "over")
        self.assertEqual(env["X_b.c"], "2")
        self.assertEqual(env["pw"], "hunter2")
        self.assertEqual(env["PW2"], "hunter2-$(NOPE)-$(pw)")
        self.assertEqual(env["KEY"], "hunter2")
        self.assertEqual((env["NAME"], env["APP"], env["IP"]), ("p", "p", "192.0.2.10"))
        self.assertEqual(env["MEM"], "4096")

    def test_missing(self):
        """A missing object or key is a ConfigError unless optional."""
        f = self.failureResultOf(self.resolve({"name": "m", "envFrom": [
            {"configMapRef": {"name": "gone"}}]}), ConfigError)
        self.assertIn('configmap "gone" not found', str(f.value))
        f = self.failureResultOf(self.resolve({"name": "m", "env": [
            {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "zz"}}}]}),
            ConfigError)
        self.assertIn("couldn't find key zz", str(f.value))
        env = self.successResultOf(self.resolve({"name": "m", "env": [
            {"name": "K", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k",
                                                         "optional": True}}}],
            "envFrom": [{"secretRef": {"name": "gone", "optional": True}}]}))
        self.assertEqual(env, [])

    def test_expand(self):
        """$(VAR) is replaced when defined, kept otherwise; $$ is a literal $."""
        self.assertEqual(expand("a $(X) $(Y) $$(X) $", {"X": "1"}), "a 1 $(Y) $(X) $")

    def test_object_data(self):
        """ConfigMap data/binaryData and Secret data (base64)/stringData become bytes."""
        self.assertEqual(object_data("configmap", {"data": {"a": "x"},
                                                   "binaryData": {"b": "eQ=="}}),
                         {"a": b"x", "b": b"y"})
        self.assertEqual(object_data("secret", {"data": {"a": "eA=="},
                                                "stringData": {"b": "y"}}),
                         {"a": b"x", "b": b"y"})
