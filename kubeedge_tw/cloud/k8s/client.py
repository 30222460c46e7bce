"""An asynchronous Kubernetes API client on treq.

:class:`KubeClient` speaks the REST API of a real kube-apiserver (v1.2x) and of the
embedded one the same way: JSON bodies, ``Status`` errors, resourceVersion-based
optimistic concurrency, chunked watch streams. Every method returns a Deferred (usable
with ``await``) that fires with the decoded JSON object, or fails with a
:class:`~kubeedge_tw.cloud.k8s.errors.K8sError`: ``NotFound``, ``Conflict``,
``AlreadyExists``, ``Invalid``, ``Gone``, ``Unauthorized``, ``Forbidden`` ... carrying the
server's ``Status``, or ``K8sConnectionError`` when no answer came. Raw treq or
``twisted.web`` exceptions never escape.

Requests pass a client-side token bucket (``kubeAPIConfig.qps`` / ``burst``, as client-go's
``rest.Config.QPS``/``Burst``) on the injected clock. The HTTP client is injected: a
``treq.client.HTTPClient`` over an ``Agent`` with our TLS policy in production
(:func:`kubeedge_tw.cloud.k8s.kubeconfig.make_kube_client`), ``treq.testing.StubTreq``
over a fake API server in unit tests.
"""

import json
from urllib.parse import quote, urlencode

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

import kubeedge_tw
from kubeedge_tw.cloud.k8s.errors import (
    K8sError, K8sTimeout, error_from_response)
from kubeedge_tw.cloud.k8s.ratelimit import TokenBucket
from kubeedge_tw.cloud.k8s.resources import ResourceTable
from kubeedge_tw.cloud.k8s.watch import Watch, connection_error

__all__ = ["KubeClient", "PATCH_TYPES", "USER_AGENT", "DEFAULT_REQUEST_TIMEOUT"]

#: ``patch_type`` -> Content-Type of the PATCH request.
PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}

#: Sent with every request, so API server audit logs show who we are.
USER_AGENT = "kubeedge-tw/{} (cloudcore)".format(kubeedge_tw.__version__)

#: Seconds a non-watch request may take, rate-limit wait included (``None``: no limit).
DEFAULT_REQUEST_TIMEOUT = 60

_JSON = "application/json"
_PROPAGATION_POLICIES = ("Orphan", "Background", "Foreground")


def _metadata(obj):
    if not isinstance(obj, dict):
        raise TypeError("expected an object (dict), got {}".format(type(obj).__name__))
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _was_cancelled(exc):
    """Whether ``exc`` is our own cancellation, possibly wrapped by ``twisted.web``
    (``ResponseNeverReceived([CancelledError])``)."""
    if isinstance(exc, defer.CancelledError):
        return True
    reasons = getattr(exc, "reasons", None) or ()
    return any(getattr(r, "check", lambda *a: False)(defer.CancelledError) for r in reasons)


class KubeClient:
    """get/list/create/update/patch/delete/watch against one API server.

    ``http_client`` has treq's ``request(method, url, headers=, data=, unbuffered=)``;
    ``server_url`` is the API server's base URL (``https://10.0.0.1:6443``, a path
    prefix allowed); ``token`` is a bearer token string, or a callable returning the
    current one (a rotating service-account token); ``qps``/``burst`` configure the rate
    limiter (``qps=None`` disables it). ``resources`` is the
    :class:`~kubeedge_tw.cloud.k8s.resources.ResourceTable` resolving names like
    ``"pods"``; methods also accept a ``ResourceType``.
    """

    def __init__(self, http_client, server_url, clock, token=None, qps=100, burst=200,
                 resources=None, request_timeout=DEFAULT_REQUEST_TIMEOUT, on_close=None):
        """Wire the client; ``on_close`` is called by :meth:`close` (e.g. to close the
        connection pool)."""
        self.http = http_client
        self.server_url = server_url.rstrip("/")
        self.clock = clock
        self._token = token
        self.resources = resources if resources is not None else ResourceTable()
        self.request_timeout = request_timeout
        self.limiter = TokenBucket(clock, qps, burst) if qps else None
        self._on_close = on_close

    # -- plumbing ---------------------------------------------------------------------

    def url(self, resource, namespace=None, name=None, subresource=None, query=None):
        """The full URL for a resource path and query (a dict; ``None`` values dropped)."""
        rtype = self.resources.resolve(resource)
        url = self.server_url + rtype.path(namespace, name, subresource)
        if query:
            pairs = [(k, v) for k, v in query.items() if v is not None]
            if pairs:
                url += "?" + urlencode(pairs, quote_via=quote, safe="")
        return url

    def _headers(self, content_type=None):
        headers = Headers({"Accept": [_JSON], "User-Agent": [USER_AGENT]})
        if content_type:
            headers.setRawHeaders("Content-Type", [content_type])
        token = self._token() if callable(self._token) else self._token
        if token:
            headers.setRawHeaders("Authorization", ["Bearer " + token])
        return headers

    def _call(self, method, url, body=None, content_type=None):
        """One request-response exchange; fires with the decoded JSON body."""
        d = defer.Deferred.fromCoroutine(self._exchange(method, url, body, content_type))
        if self.request_timeout:
            d.addTimeout(self.request_timeout, self.clock, onTimeoutCancel=self._timed_out)
        return d

    def _timed_out(self, result, timeout):
        if isinstance(result, Failure) and result.check(defer.CancelledError):
            raise K8sTimeout("request did not complete within {}s".format(timeout))
        return result

    async def _send(self, method, url, body, content_type, stream):
        if self.limiter is not None:
            await self.limiter.acquire()
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
            content_type = content_type or _JSON
        try:
            response = await self.http.request(
                method, url, headers=self._headers(content_type), data=data,
                unbuffered=stream)
        except Exception as e:
            if _was_cancelled(e):
                raise defer.CancelledError() from e
            raise connection_error(e, "{} {}".format(method, url)) from e
        if not 200 <= response.code < 300:
            raise error_from_response(response.code, await self._read(response, method, url))
        return response

    async def _read(self, response, method, url):
        try:
            return await response.content()
        except Exception as e:
            if _was_cancelled(e):
                raise defer.CancelledError() from e
            raise connection_error(e, "{} {}: reading the response".format(method, url)) \
                from e

    async def _exchange(self, method, url, body, content_type):
        response = await self._send(method, url, body, content_type, stream=False)
        raw = await self._read(response, method, url)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise K8sError("{} {}: response is not JSON: {!r}".format(method, url, raw[:80]),
                           code=response.code, reason="InvalidResponse") from None

    def _namespace(self, rtype, namespace, obj):
        if namespace is None and rtype.namespaced:
            namespace = _metadata(obj).get("namespace")
            if not namespace:
                raise ValueError("{} is namespaced: give namespace= or metadata.namespace"
                                 .format(rtype.plural))
        return namespace

    @staticmethod
    def _name(obj):
        name = _metadata(obj).get("name")
        if not name:
            raise ValueError("the object has no metadata.name")
        return name

    # -- verbs ------------------------------------------------------------------------

    def get(self, resource, name, namespace=None, subresource=None):
        """GET one object (or its ``scale``/``status`` subresource)."""
        return self._call("GET", self.url(resource, namespace, name, subresource))

    def list(self, resource, namespace=None, label_selector=None, field_selector=None,
             resource_version=None, limit=None, continue_token=None):
        """GET a collection (all namespaces when ``namespace`` is ``None``): the ``*List``
        object, ``metadata.resourceVersion`` and ``metadata.continue`` included."""
        query = {"labelSelector": label_selector, "fieldSelector": field_selector,
                 "resourceVersion": resource_version,
                 "limit": str(limit) if limit is not None else None,
                 "continue": continue_token}
        return self._call("GET", self.url(resource, namespace, query=query))

    def create(self, resource, obj, namespace=None, subresource=None):
        """POST ``obj``; the namespace defaults to ``metadata.namespace``.

        With ``subresource`` (``binding``) the POST goes to the named object's
        subresource, the name being ``obj``'s ``metadata.name`` (a Binding names its pod).
        """
        rtype = self.resources.resolve(resource)
        namespace = self._namespace(rtype, namespace, obj)
        name = self._name(obj) if subresource else None
        return self._call("POST", self.url(rtype, namespace, name, subresource), obj)

    def update(self, resource, obj, namespace=None, subresource=None):
        """PUT ``obj`` (its ``metadata.resourceVersion`` makes it conditional: a stale one
        fails with :class:`~kubeedge_tw.cloud.k8s.errors.Conflict`)."""
        rtype = self.resources.resolve(resource)
        namespace = self._namespace(rtype, namespace, obj)
        return self._call("PUT", self.url(rtype, namespace, self._name(obj), subresource),
                          obj)

    def update_status(self, resource, obj, namespace=None):
        """PUT ``obj`` to the ``status`` subresource (only its status is taken)."""
        return self.update(resource, obj, namespace, subresource="status")

    def patch(self, resource, name, patch, namespace=None, patch_type="merge",
              subresource=None):
        """PATCH one object: ``patch_type`` ``"merge"`` (RFC 7386), ``"strategic"``
        (strategic merge, built-in kinds only) or ``"json"`` (RFC 6902, ``patch`` a
        list of operations)."""
        try:
            content_type = PATCH_TYPES[patch_type]
        except KeyError:
            raise ValueError("patch_type must be one of {}, got {!r}".format(
                ", ".join(PATCH_TYPES), patch_type)) from None
        return self._call("PATCH", self.url(resource, namespace, name, subresource), patch,
                          content_type)

    def patch_status(self, resource, name, patch, namespace=None, patch_type="merge"):
        """PATCH the ``status`` subresource (how KubeEdge reports node and pod status)."""
        return self.patch(resource, name, patch, namespace, patch_type, subresource="status")

    def delete(self, resource, name, namespace=None, grace_period_seconds=None,
               propagation_policy=None, preconditions=None):
        """DELETE one object with ``DeleteOptions``.

        ``preconditions`` is ``{"uid": ..., "resourceVersion": ...}`` (either key);
        ``propagation_policy`` is ``Orphan``, ``Background`` or ``Foreground``. Fires with
        what the server returns: the object (with ``deletionTimestamp`` while graceful
        deletion or finalizers hold it) or a ``Status``.
        """
        if propagation_policy is not None and propagation_policy not in _PROPAGATION_POLICIES:
            raise ValueError("propagation_policy must be one of {}, got {!r}".format(
                ", ".join(_PROPAGATION_POLICIES), propagation_policy))
        options = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = int(grace_period_seconds)
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if preconditions:
            unknown = set(preconditions) - {"uid", "resourceVersion"}
            if unknown:
                raise ValueError("unknown preconditions: {}".format(", ".join(sorted(unknown))))
            options["preconditions"] = dict(preconditions)
        body = options if len(options) > 2 else None
        return self._call("DELETE", self.url(resource, namespace, name), body)

    def watch(self, resource, on_event, namespace=None, label_selector=None,
              field_selector=None, resource_version=None, timeout_seconds=None,
              allow_bookmarks=False):
        """Start a watch; fires with a running :class:`~kubeedge_tw.cloud.k8s.watch.Watch`.

        ``on_event(type, object)`` gets every ``ADDED``/``MODIFIED``/``DELETED`` (and
        ``BOOKMARK`` with ``allow_bookmarks``) event; ``Watch.done`` reports the end. The
        returned Deferred fails with a :class:`K8sError` if the server refuses the watch.
        ``resource_version=None`` starts with synthetic ``ADDED`` events for what exists
        now; a resourceVersion resumes after it (``Gone`` when it was compacted, as an
        ``ERROR`` event or a 410 response).
        """
        query = {"watch": "true", "labelSelector": label_selector,
                 "fieldSelector": field_selector, "resourceVersion": resource_version,
                 "timeoutSeconds": str(int(timeout_seconds)) if timeout_seconds else None,
                 "allowWatchBookmarks": "true" if allow_bookmarks else None}
        rtype = self.resources.resolve(resource)
        url = self.url(rtype, namespace, query=query)
        description = "watch {}{}".format(
            rtype.plural, " in " + namespace if namespace else "")
        d = defer.Deferred.fromCoroutine(self._start_watch(url, on_event, description))
        if self.request_timeout:
            # Only the wait for the response headers is bounded; the stream is not.
            d.addTimeout(self.request_timeout, self.clock, onTimeoutCancel=self._timed_out)
        return d

    async def _start_watch(self, url, on_event, description):
        response = await self._send("GET", url, None, None, stream=True)
        return Watch(response, on_event, description)

    def close(self):
        """Cancel requests waiting for the rate limiter and release the HTTP client's
        connections; returns a Deferred."""
        if self.limiter is not None:
            self.limiter.stop()
        if self._on_close is not None:
            return defer.maybeDeferred(self._on_close)
        return defer.succeed(None)
