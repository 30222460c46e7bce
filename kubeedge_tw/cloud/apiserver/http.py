"""The HTTP face of the embedded API server: one twisted.web leaf resource that
authenticates, routes Kubernetes REST paths to the verbs of :class:`~.api.APIServer`
and writes JSON, ``Table`` or watch streams.

Paths served (as kube-apiserver):

* discovery: ``/api``, ``/api/v1``, ``/apis``, ``/apis/<g>``, ``/apis/<g>/<v>``,
  ``/version``, ``/openapi/v2``, ``/openapi/v3[/...]``, ``/healthz``, ``/livez``,
  ``/readyz``;
* resources under ``/api/v1`` and ``/apis/<g>/<v>``: ``<plural>``,
  ``namespaces/<ns>/<plural>``, ``.../<name>``, ``.../<name>/<subresource>`` and the legacy
  ``watch/`` prefix; ``namespaces/<ns>/bindings``.

Every error is a ``Status`` object with kube-apiserver's code and reason; a request that
makes the code fail unexpectedly is logged with its traceback and answered 500 — a body
kubectl or a user got wrong never is: bad JSON or YAML, wrong types and unknown patch
formats are 400/415/422. All work is asynchronous (sqlite on the store's thread), and a
watch streams chunked JSON lines until its timeout or the client leaves.
"""

import collections
import io
import json
import random
from urllib.parse import unquote

import yaml
from twisted.internet import defer, interfaces
from twisted.logger import Logger
from twisted.web import resource, server
from zope.interface import implementer

from kubeedge_tw.cloud.apiserver import discovery, errors, protobuf, tables
from kubeedge_tw.cloud.apiserver.api import (
    APPLY_PATCH, PATCH_TYPES, DeleteOptions, decode_continue, encode_continue)
from kubeedge_tw.cloud.apiserver.memory import LARGE_RESPONSE, release_memory
from kubeedge_tw.cloud.apiserver.selectors import (
    SelectorError, parse_field_selector, parse_label_selector)
from kubeedge_tw.cloud.apiserver.watch import Watch

__all__ = ["APIResource", "APIRequest", "MAX_BODY", "negotiate", "parse_body", "header"]

#: Largest request body accepted (kube-apiserver's limit is 3 MiB).
MAX_BODY = 3 * 1024 * 1024
#: Watch timeouts when the client sets none: kube-apiserver's min-request-timeout (1800 s)
#: times a random factor in [1, 2), spreading reconnects.
WATCH_TIMEOUT = 1800

#: Size of the pieces a list response is written in.
CHUNK = 256 * 1024

_NOT_FOUND = errors.APIError(404, "NotFound", "the server could not find the requested "
                                              "resource", {})


def header(request, name):
    """A request header as text (``""`` when absent)."""
    value = request.getHeader(name)
    if value is None:
        return ""
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _dumps(obj, pretty=False):
    if pretty:
        return json.dumps(obj, indent=2, ensure_ascii=False).encode("utf-8")
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _reject_constant(name):
    raise ValueError("{} is not valid JSON".format(name))


def parse_body(data, content_type, kind="object"):
    """Decode a request body (JSON; YAML or Kubernetes protobuf when the content type
    says so); 400 for anything that does not parse, 415 for a protobuf body this server
    cannot decode completely."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media == "application/vnd.kubernetes.protobuf":
        # kubectl's typed commands (kubectl create namespace/configmap/...) send protobuf.
        try:
            return protobuf.decode_object(data)
        except protobuf.ProtobufError as e:
            raise errors.APIError(
                415, "UnsupportedMediaType", "{}; send JSON or YAML instead (kubectl apply "
                "-f / kubectl create -f)".format(e)) from None
    if media.startswith("application/vnd.kubernetes.protobuf") or media == \
            "application/cbor":
        raise errors.unsupported_media_type(media, ("application/json", "application/yaml"))
    if not data.strip():
        raise errors.bad_request("the request body is empty")
    if media in ("application/yaml", "application/x-yaml", "text/yaml", APPLY_PATCH):
        try:
            return yaml.safe_load(data)
        except yaml.YAMLError as e:
            raise errors.bad_request("the object provided is unrecognized (must be of type "
                                     "{}): yaml: {}".format(kind, str(e).replace("\n", " ")))
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise errors.bad_request("the object provided is unrecognized (must be of type {}): "
                                 "couldn't get version/kind; json parse error: {}".format(
                                     kind, e)) from None


def negotiate(accept):
    """What the ``Accept`` header asks for: ``("table", version)``,
    ``("partial", version)`` or ``("json", None)``."""
    for media_range in (accept or "").split(","):
        parts = [p.strip() for p in media_range.split(";")]
        params = {}
        for part in parts[1:]:
            key, _, value = part.partition("=")
            params[key.strip()] = value.strip()
        if params.get("g") != "meta.k8s.io":
            continue
        version = params.get("v", "v1")
        if version not in ("v1", "v1beta1"):
            continue
        if params.get("as") == "Table":
            return "table", version
        if params.get("as") in ("PartialObjectMetadata", "PartialObjectMetadataList"):
            return "partial", version
    return "json", None


class APIRequest(server.Request):
    """A twisted.web request that stops keeping a body once it passes :data:`MAX_BODY`
    (as it streams in, before authentication) and answers 413 instead of rendering."""

    max_body = MAX_BODY
    _received = 0
    _too_large = False

    def gotLength(self, length):
        """Refuse a declared length over the limit without buffering anything."""
        if length is not None and length > self.max_body:
            self._too_large = True
            self.content = io.BytesIO()
            return
        super().gotLength(length)

    def handleContentChunk(self, data):
        """Keep body bytes up to the limit; past it, drop them."""
        self._received += len(data)
        if self._too_large:
            return
        if self._received > self.max_body:
            self._too_large = True
            self.content = io.BytesIO()
            return
        super().handleContentChunk(data)

    def process(self):
        """Answer 413 for an oversized body, else render as usual."""
        if not self._too_large:
            return super().process()
        body = _dumps(errors.too_large(self.max_body).to_status())
        self.setResponseCode(413)
        self.setHeader(b"content-type", b"application/json")
        self.setHeader(b"content-length", str(len(body)).encode("ascii"))
        self.setHeader(b"connection", b"close")
        self.write(body)
        self.finish()
        return None


class _Request:
    """Per-request state: the twisted request, its query and what the client accepts."""

    def __init__(self, request):
        self.request = request
        self.query = {k.decode("utf-8", "replace"): v[-1].decode("utf-8", "replace")
                      for k, v in request.args.items()}
        accept = header(request, b"accept")
        self.mode, self.meta_version = negotiate(accept)
        self.pretty = self.query.get("pretty") in ("true", "1")
        self.gone = False
        self.user = None
        request.notifyFinish().addBoth(self._finished)

    def _finished(self, _):
        self.gone = True

    def flag(self, name):
        """A boolean query parameter."""
        return self.query.get(name, "").lower() in ("true", "1")


class APIResource(resource.Resource):
    """The whole API as one leaf resource."""

    isLeaf = True
    log = Logger()

    def __init__(self, api, authenticator, clock, server_address="127.0.0.1:6443",
                 watch_timeout=WATCH_TIMEOUT, bookmark_interval=None, rng=None):
        """Serve ``api`` (an :class:`~.api.APIServer`) to users ``authenticator``
        accepts."""
        super().__init__()
        self.api = api
        self.authenticator = authenticator
        self.clock = clock
        self.server_address = server_address
        self.watch_timeout = watch_timeout
        self.bookmark_interval = bookmark_interval
        self.rng = rng or random.Random()
        self.watches = set()
        self._trim_call = None

    # -- twisted.web entry --------------------------------------------------------------------

    def render(self, request):
        """Handle any method asynchronously."""
        state = _Request(request)
        d = defer.Deferred.fromCoroutine(self._serve(state))
        d.addErrback(self._unexpected, state)
        return server.NOT_DONE_YET

    def stop_watches(self):
        """End every open watch (server shutdown) and any pending memory trim."""
        for watch in list(self.watches):
            watch.stop()
        if self._trim_call is not None and self._trim_call.active():
            self._trim_call.cancel()
        self._trim_call = None

    def after_large_response(self):
        """Schedule one memory trim on the clock, after the current work is done."""
        if self._trim_call is None or not self._trim_call.active():
            self._trim_call = self.clock.callLater(0, release_memory)

    async def _serve(self, state):
        request = state.request
        try:
            user = state.user = self.authenticator.authenticate(request)
            if user is None:
                raise errors.unauthorized()
            path = request.path.decode("utf-8", "replace")
            segments = [unquote(s) for s in path.split("/") if s]
            result = await self._route(state, request.method.decode("ascii", "replace"),
                                       segments)
            if result is not None:
                code, body = result
                self._send(state, code, body)
        except errors.APIError as e:
            self._send(state, e.code, e.to_status())
        except SelectorError as e:
            self._send(state, 400, errors.bad_request(str(e)).to_status())

    def _unexpected(self, f, state):
        self.log.failure("apiserver: unexpected error serving {method} {path}", f,
                         method=state.request.method, path=state.request.uri,
                         log_event="apiserver_internal_error")
        self._send(state, 500, errors.internal_error(f.getErrorMessage()).to_status())

    def _stream(self, state, head, items, tail):
        """Send ``head``, the JSON ``items`` comma-separated, and ``tail`` as a 200 whose
        body is written in pieces as the connection takes them (a pull producer), so a big
        list is never copied into one buffer nor queued whole in the transport."""
        request = state.request
        if state.gone:
            return
        length = len(head) + len(tail) + sum(len(i) for i in items) + max(len(items) - 1, 0)
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"content-length", str(length).encode("ascii"))
        request.setHeader(b"cache-control", b"no-cache, private")
        producer = _ListProducer(state, head, items, tail, self.after_large_response
                                 if length >= LARGE_RESPONSE else None)
        request.registerProducer(producer, True)
        producer.start()

    def _send(self, state, code, body, content_type=b"application/json"):
        if state.gone:
            return
        request = state.request
        if isinstance(body, (dict, list)):
            body = _dumps(body, state.pretty)
        elif state.pretty and content_type == b"application/json":
            body = _dumps(json.loads(body), True)
        request.setResponseCode(code)
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"content-length", str(len(body)).encode("ascii"))
        request.setHeader(b"cache-control", b"no-cache, private")
        request.write(body)
        request.finish()
        self.log.debug("{user} {method} {uri} {code}", user=getattr(state.user, "name", "-"),
                       method=request.method, uri=request.uri, code=code,
                       log_event="apiserver_request")
        if len(body) >= LARGE_RESPONSE:
            self.after_large_response()

    # -- routing ---------------------------------------------------------------------------

    async def _route(self, state, method, segments):
        registry = self.api.registry
        if not segments:
            return 200, {"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez",
                                   "/openapi/v2", "/openapi/v3", "/readyz", "/version"]}
        head = segments[0]
        if head in ("healthz", "livez", "readyz"):
            self._send(state, 200, b"ok", b"text/plain; charset=utf-8")
            return None
        if head == "version" and len(segments) == 1:
            return 200, discovery.version_info()
        if head == "openapi":
            return self._openapi(state, segments[1:])
        if head == "api":
            if len(segments) == 1:
                return 200, discovery.api_versions(self.server_address)
            group, version, rest = "", segments[1], segments[2:]
        elif head == "apis":
            if len(segments) == 1:
                return 200, discovery.api_group_list(registry)
            if len(segments) == 2:
                found = discovery.api_group(registry, segments[1])
                if found is None:
                    raise _NOT_FOUND
                return 200, found
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            raise _NOT_FOUND
        if not rest:
            found = discovery.api_resource_list(registry, group, version)
            if found is None:
                raise _NOT_FOUND
            return 200, found
        return await self._resource_path(state, method, group, version, rest)

    def _openapi(self, state, rest):
        registry = self.api.registry
        if rest == ["v2"]:
            accept = header(state.request, b"accept")
            if accept and "json" not in accept and "*/*" not in accept:
                # client-go asks for protobuf only; it falls back when refused.
                raise errors.not_acceptable(["application/json"])
            return 200, discovery.openapi_v2_document(registry)
        if rest == ["v3"]:
            return 200, discovery.openapi_v3_root(registry)
        if len(rest) >= 3 and rest[0] == "v3":
            if rest[1] == "api" and len(rest) == 3:
                document = discovery.openapi_v3_document(registry, "", rest[2])
            elif rest[1] == "apis" and len(rest) == 4:
                document = discovery.openapi_v3_document(registry, rest[2], rest[3])
            else:
                document = None
            if document is not None:
                return 200, document
        raise _NOT_FOUND

    async def _resource_path(self, state, method, group, version, rest):
        registry = self.api.registry
        watch_path = False
        if rest[0] == "watch":
            watch_path = True
            rest = rest[1:]
            if not rest:
                raise _NOT_FOUND
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3 and group == "" and rest[2] == "bindings":
            if len(rest) != 3 or method != "POST":
                raise _NOT_FOUND
            return await self._legacy_binding(state, version, rest[1])
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = registry.get(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace = rest[1]
                rest = rest[2:]
        rtype = registry.get(group, version, rest[0])
        if rtype is None or len(rest) > 3:
            raise _NOT_FOUND
        if namespace and not rtype.namespaced:
            raise _NOT_FOUND
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and sub not in rtype.subresources:
            raise _NOT_FOUND
        if name is None:
            if method == "GET":
                if watch_path or state.flag("watch"):
                    return await self._watch(state, rtype, namespace)
                return await self._list(state, rtype, namespace)
            if watch_path:
                raise errors.method_not_supported(rtype.plural, method, rtype.group)
            if method == "POST":
                if rtype.namespaced and not namespace:
                    raise errors.method_not_supported(rtype.plural, "create", rtype.group)
                return await self._create(state, rtype, namespace)
            if method == "DELETE":
                return await self._delete_collection(state, rtype, namespace)
            raise errors.method_not_supported(rtype.plural, method, rtype.group)
        if rtype.namespaced and not namespace:
            raise _NOT_FOUND
        if watch_path:
            if method != "GET" or sub is not None:
                raise _NOT_FOUND
            state.query["fieldSelector"] = _and_name(state.query.get("fieldSelector"), name)
            return await self._watch(state, rtype, namespace)
        if sub == "scale":
            return await self._scale(state, method, rtype, namespace, name)
        if sub == "binding":
            if method != "POST":
                raise errors.method_not_supported("pods/binding", method)
            body = self._body(state, "Binding")
            return await self._bind(state, rtype, namespace, name, body)
        if method == "GET":
            text = await self.api.get(rtype, namespace, name)
            return 200, self._render_one(state, rtype, text)
        if method == "PUT":
            body = self._body(state, rtype.kind)
            stored = await self.api.update(rtype, namespace, name, body, subresource=sub,
                                           dry_run=self._dry_run(state))
            return 200, stored
        if method == "PATCH":
            patch_type = self._patch_type(state)
            body = self._body(state, rtype.kind)
            stored = await self.api.patch(rtype, namespace, name, patch_type, body,
                                          subresource=sub, dry_run=self._dry_run(state))
            return 200, stored
        if method == "DELETE" and sub is None:
            options = self._delete_options(state)
            obj, _ = await self.api.delete(rtype, namespace, name, options)
            return 200, obj
        raise errors.method_not_supported(rtype.plural + ("/" + sub if sub else ""), method,
                                          rtype.group)

    # -- helpers ---------------------------------------------------------------------------

    def _body(self, state, kind):
        data = state.request.content.read() if state.request.content is not None else b""
        if len(data) > MAX_BODY:
            raise errors.too_large(MAX_BODY)
        content_type = header(state.request, b"content-type")
        return parse_body(data, content_type, kind)

    @staticmethod
    def _dry_run(state):
        value = state.query.get("dryRun")
        if value is None:
            return False
        if value != "All":
            raise errors.bad_request('unsupported dryRun value {!r}: supported values: "All"'
                                     .format(value))
        return True

    def _patch_type(self, state):
        content_type = header(state.request, b"content-type").split(";")[0]
        content_type = content_type.strip().lower()
        if content_type not in PATCH_TYPES:
            raise errors.unsupported_media_type(content_type, PATCH_TYPES)
        return content_type

    def _delete_options(self, state):
        data = state.request.content.read() if state.request.content is not None else b""
        content_type = header(state.request, b"content-type")
        body = parse_body(data, content_type, "DeleteOptions") if data.strip() else None
        options = DeleteOptions.parse(body, state.query)
        options.dry_run = options.dry_run or self._dry_run(state)
        return options

    def _selectors(self, state, rtype):
        labels = parse_label_selector(state.query.get("labelSelector"))
        fields = parse_field_selector(state.query.get("fieldSelector"))
        for field in fields.fields():
            if not rtype.supports_field(field):
                raise errors.bad_request('field label not supported: {}'.format(field))
        return labels, fields

    @staticmethod
    def _output_text(rtype, text):
        """The stored JSON bytes as served by ``rtype``'s version (custom resources may
        be stored under another served version)."""
        if rtype.crd_name is None:
            return text
        marker = '"apiVersion":"{}"'.format(rtype.api_version).encode("utf-8")
        if marker in text:
            return text
        obj = json.loads(text)
        obj["apiVersion"] = rtype.api_version
        return _dumps(obj)

    def _render_one(self, state, rtype, text):
        if state.mode == "table":
            obj = json.loads(text)
            return tables.build_table(
                rtype.table, [obj], self.clock.seconds(),
                resource_version=obj["metadata"].get("resourceVersion", ""),
                include_object=state.query.get("includeObject", "Metadata"),
                api_version="meta.k8s.io/" + state.meta_version)
        if state.mode == "partial":
            obj = json.loads(text)
            return {"kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/" + state.meta_version,
                    "metadata": obj.get("metadata") or {}}
        return self._output_text(rtype, text)

    # -- verbs ---------------------------------------------------------------------------

    async def _list(self, state, rtype, namespace):
        labels, fields = self._selectors(state, rtype)
        limit = state.query.get("limit")
        if limit:
            try:
                limit = int(limit)
            except ValueError:
                raise errors.bad_request("limit must be an integer")
            if limit <= 0:
                limit = None
        else:
            limit = None
        after = decode_continue(state.query["continue"]) if state.query.get("continue") \
            else None
        rv, items, next_key = await self.api.list(rtype, namespace, labels, fields, limit,
                                                  after)
        token = encode_continue(rv, next_key) if next_key is not None else ""
        # Objects are parsed one at a time (and dropped) so that a list of thousands of
        # pods never exists as thousands of dicts at once.
        objects = (json.loads(text) for text, _ in items)
        if state.mode == "table":
            return 200, tables.build_table(
                rtype.table, objects, self.clock.seconds(),
                resource_version=str(rv), continue_token=token,
                include_object=state.query.get("includeObject", "Metadata"),
                api_version="meta.k8s.io/" + state.meta_version)
        if state.mode == "partial":
            meta = {"resourceVersion": str(rv)}
            if token:
                meta["continue"] = token
            return 200, {"kind": "PartialObjectMetadataList",
                         "apiVersion": "meta.k8s.io/" + state.meta_version, "metadata": meta,
                         "items": [{"kind": "PartialObjectMetadata",
                                    "apiVersion": "meta.k8s.io/" + state.meta_version,
                                    "metadata": obj.get("metadata") or {}}
                                   for obj in objects]}
        meta = {"resourceVersion": str(rv)}
        if token:
            meta["continue"] = token
        head = _dumps({"kind": rtype.list_kind, "apiVersion": rtype.api_version,
                       "metadata": meta})[:-1] + b',"items":['
        texts = collections.deque(self._output_text(rtype, text) for text, _ in items)
        del items
        if state.pretty:
            return 200, head + b",".join(texts) + b"]}"
        self._stream(state, head, texts, b"]}")
        return None

    async def _create(self, state, rtype, namespace):
        body = self._body(state, rtype.kind)
        stored = await self.api.create(rtype, namespace, body, dry_run=self._dry_run(state))
        return 201, stored

    async def _delete_collection(self, state, rtype, namespace):
        labels, fields = self._selectors(state, rtype)
        options = self._delete_options(state)
        deleted = await self.api.delete_collection(rtype, namespace, labels, fields, options)
        return 200, {"kind": rtype.list_kind, "apiVersion": rtype.api_version,
                     "metadata": {"resourceVersion": str(self.api.store.current_rv)},
                     "items": deleted}

    async def _scale(self, state, method, rtype, namespace, name):
        if method == "GET":
            return 200, await self.api.scale(rtype, namespace, name)
        if method == "PUT":
            body = self._body(state, "Scale")
            return 200, await self.api.scale(rtype, namespace, name, scale=body,
                                             dry_run=self._dry_run(state))
        if method == "PATCH":
            patch_type = self._patch_type(state)
            body = self._body(state, "Scale")
            return 200, await self.api.scale(rtype, namespace, name, patch_type=patch_type,
                                             patch=body, dry_run=self._dry_run(state))
        raise errors.method_not_supported(rtype.plural + "/scale", method, rtype.group)

    async def _bind(self, state, rtype, namespace, name, body):
        await self.api.bind(rtype, namespace, name, body, dry_run=self._dry_run(state))
        return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                     "status": "Success", "code": 201}

    async def _legacy_binding(self, state, version, namespace):
        rtype = self.api.registry.get("", version, "pods")
        if rtype is None:
            raise _NOT_FOUND
        body = self._body(state, "Binding")
        name = ((body.get("metadata") or {}).get("name") if isinstance(body, dict) else None)
        if not name:
            raise errors.invalid("Binding", "", [errors.field_required("metadata.name")])
        return await self._bind(state, rtype, namespace, name, body)

    # -- watch ---------------------------------------------------------------------------

    async def _watch(self, state, rtype, namespace):
        labels, fields = self._selectors(state, rtype)
        timeout = state.query.get("timeoutSeconds")
        if timeout:
            try:
                timeout = max(int(timeout), 0)
            except ValueError:
                raise errors.bad_request("timeoutSeconds must be an integer")
        else:
            timeout = self.watch_timeout * (1 + self.rng.random())
        request = state.request
        emit = self._watch_encoder(state, rtype)

        def finish():
            if not state.gone:
                request.finish()

        options = {}
        if self.bookmark_interval is not None:
            options["bookmark_interval"] = self.bookmark_interval
        watch = Watch(self.api.store, self.api, rtype, namespace, labels, fields, emit,
                      finish, self.clock, timeout,
                      bookmarks=state.flag("allowWatchBookmarks") and state.mode == "json",
                      **options)
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-cache, private")
        self.watches.add(watch)

        def client_gone(_):
            watch.stop(write=False)
            self.watches.discard(watch)

        request.notifyFinish().addBoth(client_gone)
        try:
            await watch.start(state.query.get("resourceVersion", ""))
        except BaseException:
            self.watches.discard(watch)
            raise
        if not state.gone and not watch.stopped:
            # Send the headers now so that the client's request returns even when no
            # event is due yet.
            request.write(b"")
        return None

    def _watch_encoder(self, state, rtype):
        request = state.request
        first = [True]
        include = state.query.get("includeObject", "Metadata")

        def emit(kind, text, obj):
            if state.gone:
                return
            if state.mode == "table" and kind not in ("ERROR", "BOOKMARK"):
                if obj is None:
                    obj = json.loads(text)
                table = tables.build_table(
                    rtype.table, [obj], self.clock.seconds(),
                    resource_version=obj["metadata"].get("resourceVersion", ""),
                    include_object=include, api_version="meta.k8s.io/" + state.meta_version,
                    headers=first[0])
                first[0] = False
                payload = _dumps(table)
            elif state.mode == "partial" and kind not in ("ERROR", "BOOKMARK"):
                if obj is None:
                    obj = json.loads(text)
                payload = _dumps({"kind": "PartialObjectMetadata",
                                  "apiVersion": "meta.k8s.io/" + state.meta_version,
                                  "metadata": obj.get("metadata") or {}})
            elif text is None:
                payload = _dumps(obj)
            else:
                payload = self._output_text(rtype, text)
            request.write(b'{"type":"' + kind.encode("ascii") + b'","object":' + payload +
                          b"}\n")

        return emit


@implementer(interfaces.IPushProducer)
class _ListProducer:
    """Writes a list response in pieces of about :data:`CHUNK` bytes until the transport
    asks it to pause (its buffer is full), and again when it resumes. (A push producer:
    twisted.web would drive a pull producer with the global cooperator, not our clock.)"""

    def __init__(self, state, head, items, tail, when_done=None):
        self.state = state
        self.when_done = when_done
        self.pending = head
        self.items = items
        self.tail = tail
        self.first = True
        self.paused = False
        self.done = False

    def start(self):
        """Start writing."""
        self._pump()

    def _pump(self):
        request = self.state.request
        while not self.paused and not self.done:
            if self.state.gone:
                self.stopProducing()
                return
            pieces, size = [self.pending], len(self.pending)
            items = self.items
            while items and size < CHUNK:
                item = items.popleft()
                pieces.append(item if self.first else b"," + item)
                self.first = False
                size += len(item) + 1
            self.pending = b""
            last = not items
            if last:
                pieces.append(self.tail)
                self.done = True
            request.write(b"".join(pieces))
            if last:
                request.unregisterProducer()
                request.finish()
                if self.when_done is not None:
                    self.when_done()

    def pauseProducing(self):
        """The transport's buffer is full."""
        self.paused = True

    def resumeProducing(self):
        """The transport wants more."""
        self.paused = False
        self._pump()

    def stopProducing(self):
        """The client went away: drop what is left."""
        self.items.clear()
        self.done = True


def _and_name(selector, name):
    """A field selector plus ``metadata.name=<name>`` (the legacy ``watch/`` path with a
    name)."""
    escaped = name.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
    return ",".join(s for s in (selector, "metadata.name=" + escaped) if s)

