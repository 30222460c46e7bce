"""Edged's local read-only HTTP endpoint (kubelet's read-only port, 127.0.0.1:10255).

``GET /pods`` answers a v1.PodList of the pods edged runs, each with its current status;
``GET /healthz`` answers ``ok``. KubeEdge's own tests read ``/pods`` (reference 5,
Networking). Anything else is 404, any other method 405.
"""

import json

from twisted.web import resource, server

__all__ = ["ReadOnlyAPI", "make_site"]


class _JSON(resource.Resource):
    isLeaf = True

    def __init__(self, produce):
        super().__init__()
        self._produce = produce

    def render_GET(self, request):
        """The produced value as JSON."""
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(self._produce(), separators=(",", ":")).encode("utf-8")


class _Healthz(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        """``ok``."""
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"ok"


class ReadOnlyAPI(resource.Resource):
    """The root resource: ``/pods`` and ``/healthz``."""

    def __init__(self, pod_list):
        super().__init__()
        self.putChild(b"pods", _JSON(pod_list))
        self.putChild(b"healthz", _Healthz())

    def getChild(self, path, request):
        """404 for anything but the named children."""
        if path == b"":
            return resource.NoResource("try /pods or /healthz")
        return resource.NoResource()


def make_site(pod_list, reactor=None):
    """A ``Site`` serving :class:`ReadOnlyAPI`; ``pod_list()`` returns the PodList dict."""
    site = server.Site(ReadOnlyAPI(pod_list), reactor=reactor)
    site.displayTracebacks = False
    site.noisy = False
    return site
