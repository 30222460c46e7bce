"""The read-only HTTP API (/pods, /healthz), through treq's in-memory StubTreq."""

import json

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.edge.edged.server import ReadOnlyAPI

POD_LIST = {"kind": "PodList", "apiVersion": "v1", "metadata": {},
            "items": [{"metadata": {"name": "a"}, "status": {"phase": "Running"}}]}


class ReadOnlyAPITests(SynchronousTestCase):
    """GET /pods and /healthz answer; other paths 404, other methods 405."""

    def setUp(self):
        self.treq = StubTreq(ReadOnlyAPI(lambda: POD_LIST))

    def get(self, path, method="GET"):
        """``(code, content types, body)`` of one request."""
        response = self.successResultOf(self.treq.request(method, "http://127.0.0.1" + path))
        body = self.successResultOf(response.content())
        return response.code, response.headers.getRawHeaders(b"content-type"), body

    def test_pods(self):
        """/pods is the PodList as JSON."""
        code, kind, body = self.get("/pods")
        self.assertEqual((code, kind), (200, [b"application/json"]))
        self.assertEqual(json.loads(body), POD_LIST)

    def test_healthz(self):
        """/healthz answers ok."""
        code, _, body = self.get("/healthz")
        self.assertEqual((code, body), (200, b"ok"))

    def test_other(self):
        """Unknown paths are 404 and writes 405."""
        self.assertEqual(self.get("/nope")[0], 404)
        self.assertEqual(self.get("/")[0], 404)
        self.assertEqual(self.get("/pods", method="POST")[0], 405)
