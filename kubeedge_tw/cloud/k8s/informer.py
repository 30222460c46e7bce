"""List+watch informers: a local cache of one resource kept current, with handlers.

:class:`Informer` is client-go's reflector + store + shared-informer handler dispatch
for one resource (optionally one namespace and label/field selectors), ported as a
Twisted service driven by callbacks on the injected clock:

1. **List** the collection (in pages, as client-go's pager); every object not yet cached
   is an add, every cached one whose resourceVersion changed an update, every cached one
   missing from the list a delete
   (with the last state we knew, like client-go's ``DeletedFinalStateUnknown``); an
   object recreated under the same name (new uid) is a delete then an add. The first
   successful list makes :attr:`Informer.has_synced` true.
2. **Watch** from the list's resourceVersion; each event updates the cache and the last
   resourceVersion, then runs the handlers. When the stream ends (the server's
   ``timeoutSeconds``, a restart) the watch resumes from the last resourceVersion.
3. **410 Gone** (the resourceVersion was compacted away) -> relist at once; step 1's diff
   hands the handlers exactly what changed while we could not see.
4. **Errors** (connection refused, 5xx, a broken stream, a watch that ends at once
   without events) -> retry after ``retry_policy(attempt)`` seconds, by default
   ``twisted.application.internet.backoffPolicy`` (1 s growing x1.5 to 30 s, with
   jitter), the policy ``ClientService`` uses; a list failure retries the list, a watch
   failure the watch from the last resourceVersion. Success resets the attempt count.

Handlers are ``on_add(obj)``, ``on_update(old, new)``, ``on_delete(obj)``; one that raises
(or returns a failing Deferred) is logged with ``log.failure`` and the informer goes on
with the next handler and event: nothing is dropped silently. :meth:`Informer.stop`
cancels the request, the stream and the retry timer in flight, leaving no delayed call.
"""

from twisted.application.internet import backoffPolicy
from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from kubeedge_tw.cloud.k8s.errors import Gone, K8sError

__all__ = ["Informer", "object_key", "default_retry_policy", "DEFAULT_PAGE_SIZE",
           "DEFAULT_WATCH_TIMEOUT", "MIN_WATCH_SECONDS"]

#: ``timeoutSeconds`` asked of each watch; client-go picks 5-10 minutes at random.
DEFAULT_WATCH_TIMEOUT = 300

#: Items per list request (client-go's pager default); ``None`` lists in one request.
DEFAULT_PAGE_SIZE = 500

#: A watch that ends cleanly sooner than this without any event counts as a failure
#: (client-go's "very short watch" check), so a server that closes every watch at once
#: is retried with backoff instead of in a tight loop.
MIN_WATCH_SECONDS = 1.0


def object_key(obj):
    """client-go's ``MetaNamespaceKeyFunc``: ``namespace/name``, or ``name`` when
    cluster-scoped."""
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise ValueError("object has no metadata.name")
    namespace = meta.get("namespace")
    return "{}/{}".format(namespace, name) if namespace else name


def _rv(obj):
    return (obj.get("metadata") or {}).get("resourceVersion")


def _uid(obj):
    return (obj.get("metadata") or {}).get("uid")


class _ShortWatch(Exception):
    """The watch ended cleanly at once without delivering anything."""


class Informer(Service):
    """A cache of one resource, kept current by list+watch; see the module docstring.

    ``client`` is a :class:`~kubeedge_tw.cloud.k8s.client.KubeClient`; ``resource`` a
    name or ``ResourceType``; ``clock`` schedules retries. ``retry_policy(attempt) ->
    seconds`` defaults to :func:`default_retry_policy`. Lists are read in pages of
    ``page_size``; each watch asks the server to end it after ``watch_timeout`` seconds.
    """

    log = Logger()

    def __init__(self, client, resource, clock, namespace=None, label_selector=None,
                 field_selector=None, retry_policy=None,
                 watch_timeout=DEFAULT_WATCH_TIMEOUT, min_watch_seconds=MIN_WATCH_SECONDS,
                 page_size=DEFAULT_PAGE_SIZE, on_add=None, on_update=None, on_delete=None):
        """Build a stopped informer; ``on_*`` are a first set of handlers."""
        self.client = client
        self.rtype = client.resources.resolve(resource)
        self.clock = clock
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.retry_policy = retry_policy or default_retry_policy()
        self.watch_timeout = watch_timeout
        self.min_watch_seconds = min_watch_seconds
        self.page_size = page_size
        self.name = "informer:" + self.rtype.plural + (":" + namespace if namespace else "")
        self._handlers = []
        if on_add or on_update or on_delete:
            self.add_handler(on_add, on_update, on_delete)
        self._cache = {}
        self._resource_version = None
        self._synced = False
        self._sync_waiters = []
        self._running = False
        self._attempt = 0
        self._current = None      # the list or watch Deferred in flight
        self._retry_call = None   # the DelayedCall of a pending retry

    # -- public -----------------------------------------------------------------------

    def add_handler(self, on_add=None, on_update=None, on_delete=None):
        """Add a set of handlers; any may be ``None``. Handlers added after the initial
        sync see only later changes (read :meth:`list` for the current state)."""
        self._handlers.append((on_add, on_update, on_delete))

    @property
    def has_synced(self):
        """True once the first list has been put in the cache and handled."""
        return self._synced

    @property
    def resource_version(self):
        """The last resourceVersion seen (list or event); watches resume after it."""
        return self._resource_version

    @property
    def attempt(self):
        """Consecutive failures so far (0 while healthy)."""
        return self._attempt

    def wait_synced(self):
        """A Deferred firing with ``None`` once synced; it fails with ``CancelledError``
        if the informer is stopped first."""
        if self._synced:
            return defer.succeed(None)
        d = defer.Deferred(self._sync_waiters.remove)
        self._sync_waiters.append(d)
        return d

    def get(self, name, namespace=None):
        """The cached object, or ``None``."""
        return self._cache.get("{}/{}".format(namespace, name) if namespace else name)

    def get_by_key(self, key):
        """The cached object for a ``namespace/name`` key, or ``None``."""
        return self._cache.get(key)

    def list(self):
        """All cached objects."""
        return list(self._cache.values())

    def keys(self):
        """All cache keys (``namespace/name``)."""
        return list(self._cache)

    def start(self):
        """Start list+watch (``startService``)."""
        self.startService()

    def stop(self):
        """Stop: cancel what is in flight and any retry timer (``stopService``)."""
        return self.stopService()

    def startService(self):
        """Service hook: begin with a list (a second start while running does nothing)."""
        if self._running:
            return
        super().startService()
        self._running = True
        self._attempt = 0
        self._list()

    def stopService(self):
        """Service hook: cancel everything; returns an already fired Deferred."""
        super().stopService()
        self._running = False
        if self._retry_call is not None:
            if self._retry_call.active():
                self._retry_call.cancel()
            self._retry_call = None
        current, self._current = self._current, None
        if current is not None and not current.called:
            current.cancel()
        waiters, self._sync_waiters = self._sync_waiters, []
        for d in waiters:
            d.errback(defer.CancelledError("informer {} stopped".format(self.name)))
        return defer.succeed(None)

    # -- the list/watch cycle ---------------------------------------------------------

    def _run(self, step, coroutine):
        d = defer.Deferred.fromCoroutine(coroutine)
        self._current = d
        d.addCallbacks(self._step_done, self._step_failed, errbackArgs=(step,))
        d.addErrback(self._internal_error, step)

    def _list(self):
        self._run("list", self._do_list())

    def _watch_from_last(self):
        self._run("watch", self._do_watch())

    async def _do_list(self):
        try:
            items, resource_version = await self._list_pages(self.page_size)
        except Gone:
            # A continue token expired between pages: like client-go's pager, fall back
            # to one unpaged list.
            items, resource_version = await self._list_pages(None)
        self._replace(items, resource_version)

    async def _list_pages(self, page_size):
        """Every item of the collection, in pages of ``page_size`` (``None``: one
        request), and the resourceVersion of the (first page's) snapshot."""
        items, token, resource_version = [], None, None
        while True:
            result = await self.client.list(
                self.rtype, namespace=self.namespace, label_selector=self.label_selector,
                field_selector=self.field_selector, limit=page_size, continue_token=token)
            meta = result.get("metadata") or {}
            items.extend(result.get("items") or [])
            if resource_version is None:
                resource_version = meta.get("resourceVersion")
            token = meta.get("continue")
            if not token or not page_size:
                return items, resource_version

    async def _do_watch(self):
        watch = await self.client.watch(
            self.rtype, self._on_event, namespace=self.namespace,
            label_selector=self.label_selector, field_selector=self.field_selector,
            resource_version=self._resource_version, timeout_seconds=self.watch_timeout,
            allow_bookmarks=True)
        started = self.clock.seconds()
        await watch.done
        if watch.events == 0 and self.clock.seconds() - started < self.min_watch_seconds:
            raise _ShortWatch("the watch ended after {:.1f}s without any event".format(
                self.clock.seconds() - started))

    def _step_done(self, _):
        """A list finished, or a watch ended cleanly: (re)watch from the last version."""
        self._current = None
        if self._running:
            self._attempt = 0
            self._watch_from_last()

    def _step_failed(self, failure, step):
        self._current = None
        if not self._running:
            return None  # stopped: the CancelledError is ours
        if failure.check(Gone) and step == "watch":
            self.log.info("{informer}: resourceVersion {rv} is gone ({error}); relisting",
                          informer=self.name, rv=self._resource_version,
                          error=failure.value.message, log_event="k8s_informer_relist")
            self._list()
            return None
        delay = self.retry_policy(self._attempt)
        self._attempt += 1
        error = failure.value
        if not isinstance(error, (K8sError, _ShortWatch)):
            # Not an API or transport error: a bug somewhere; keep the traceback.
            self.log.failure("{informer}: {step} failed; retrying in {delay:.1f}s",
                             failure, informer=self.name, step=step, delay=delay,
                             log_event="k8s_informer_retry")
        else:
            self.log.warn("{informer}: {step} failed: {error}; retrying in {delay:.1f}s "
                          "(attempt {attempt})", informer=self.name, step=step,
                          error=str(error), delay=delay, attempt=self._attempt,
                          log_event="k8s_informer_retry")
        self._retry_call = self.clock.callLater(delay, self._retry, step)
        return None

    def _retry(self, step):
        self._retry_call = None
        if not self._running:
            return
        if step == "list" or not self._synced:
            self._list()
        else:
            self._watch_from_last()

    def _internal_error(self, failure, step):
        self.log.failure("{informer}: internal error after {step}", failure,
                         informer=self.name, step=step, log_event="k8s_informer_bug")

    # -- cache and handlers -------------------------------------------------------------

    def _fill_type(self, obj):
        # List items come without kind/apiVersion; watch objects have them. Handlers get
        # the same shape either way.
        obj.setdefault("kind", self.rtype.kind)
        obj.setdefault("apiVersion", self.rtype.api_version)
        return obj

    def _replace(self, items, resource_version):
        """Make the cache equal the list and tell the handlers what changed."""
        fresh = {}
        for obj in items:
            try:
                fresh[object_key(obj)] = self._fill_type(obj)
            except (ValueError, AttributeError):
                self.log.warn("{informer}: list item without a name ignored: {item!r}",
                              informer=self.name, item=obj, log_event="k8s_informer_bad_item")
        old_cache, self._cache = self._cache, dict(fresh)
        if resource_version:
            self._resource_version = resource_version
        for key, obj in fresh.items():
            old = old_cache.get(key)
            if old is None:
                self._dispatch("add", key, obj)
            elif _uid(old) and _uid(obj) and _uid(old) != _uid(obj):
                self._dispatch("delete", key, old)
                self._dispatch("add", key, obj)
            elif _rv(old) != _rv(obj):
                self._dispatch("update", key, old, obj)
        for key, old in old_cache.items():
            if key not in fresh:
                self._dispatch("delete", key, old)
        if not self._synced:
            self._synced = True
            self.log.info("{informer}: synced {count} objects at resourceVersion {rv}",
                          informer=self.name, count=len(self._cache),
                          rv=self._resource_version, log_event="k8s_informer_synced")
            waiters, self._sync_waiters = self._sync_waiters, []
            for d in waiters:
                d.callback(None)

    def _on_event(self, etype, obj):
        """One watch event: cache first, then handlers."""
        rv = _rv(obj)
        if etype == "BOOKMARK":
            if rv:
                self._resource_version = rv
            return
        self._attempt = 0  # the stream works
        try:
            key = object_key(obj)
        except (ValueError, AttributeError):
            self.log.warn("{informer}: {type} event without a name ignored: {obj!r}",
                          informer=self.name, type=etype, obj=obj,
                          log_event="k8s_informer_bad_event")
            return
        self._fill_type(obj)
        if etype == "DELETED":
            self._cache.pop(key, None)
            if rv:
                self._resource_version = rv
            self._dispatch("delete", key, obj)
            return
        old = self._cache.get(key)
        self._cache[key] = obj
        if rv:
            self._resource_version = rv
        if old is None:
            self._dispatch("add", key, obj)
        else:
            self._dispatch("update", key, old, obj)

    def _dispatch(self, event, key, *args):
        index = {"add": 0, "update": 1, "delete": 2}[event]
        for handlers in list(self._handlers):
            handler = handlers[index]
            if handler is None:
                continue
            try:
                result = handler(*args)
            except Exception:
                self._handler_failed(None, event, key, handler)
                continue
            if isinstance(result, defer.Deferred):
                result.addErrback(self._handler_failed, event, key, handler)

    def _handler_failed(self, failure, event, key, handler):
        self.log.failure("{informer}: {event} handler {handler} failed for {key}", failure,
                         informer=self.name, event=event, key=key,
                         handler=getattr(handler, "__qualname__", repr(handler)),
                         log_event="k8s_informer_handler_failed")


def default_retry_policy():
    """``backoffPolicy(1, 30, 1.5)`` with jitter: 1 s, 1.5 s, 2.25 s ... at most 30 s."""
    return backoffPolicy(initialDelay=1.0, maxDelay=30.0, factor=1.5)
