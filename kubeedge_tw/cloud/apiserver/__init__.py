"""The embedded Kubernetes-compatible API server (``modules.apiServer``).

When kubeedge-cloud has no external Kubernetes API server (no ``kubeAPIConfig.master`` /
``kubeConfig``), it serves one itself, k3s-style: HTTPS on ``modules.apiServer.address:port``
(127.0.0.1:6443 by default) with a serving certificate from the cloud CA, objects in
sqlite (``modules.apiServer.dataSource``), bearer-token or client-certificate
authentication, and an admin kubeconfig written to ``<state-dir>/kubeconfig`` so that
``KUBECONFIG=<state-dir>/kubeconfig kubectl get nodes`` just works.

Module map: :mod:`.store` (sqlite, resourceVersions, watch log), :mod:`.resources` (the
type registry and per-kind rules), :mod:`.api` (verbs), :mod:`.watch`, :mod:`.http`
(routing, content negotiation), :mod:`.discovery` (discovery, OpenAPI), :mod:`.tables`
(``kubectl get`` columns), :mod:`.validation`, :mod:`.selectors`, :mod:`.patch`,
:mod:`.auth` (certificates, token, kubeconfig), :mod:`.crds` (KubeEdge CRDs).

:func:`create_apiserver` builds an :class:`APIServerService` from the cloud config; the
cloud's ``makeService`` adds it as the first child of the cloud tree so it is serving before
the modules that use it start, and stops last.
"""

import os

from OpenSSL import SSL, crypto
from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from twisted.python import failure
from twisted.web import server

from kubeedge_tw.cloud.apiserver import auth
from kubeedge_tw.cloud.apiserver.api import APIServer
from kubeedge_tw.cloud.apiserver.crds import kubeedge_crds
from kubeedge_tw.cloud.apiserver.http import APIRequest, APIResource
from kubeedge_tw.cloud.apiserver.resources import Registry, builtin_types
from kubeedge_tw.cloud.apiserver.store import DEFAULT_WINDOW, Store
from kubeedge_tw.common import pki
from kubeedge_tw.common.core import SetupError

__all__ = ["APIServerService", "APIServerSetupError", "create_apiserver", "KUBECONFIG_NAME"]

#: File name of the admin kubeconfig in the state dir.
KUBECONFIG_NAME = "kubeconfig"


class APIServerSetupError(SetupError):
    """The API server cannot be built from the config (certificates); says why."""


class _QuietSite(server.Site):
    """A Site without an access-log line per request (kube-apiserver does not log every
    request either; the resource logs them at debug level) that keeps its connections, so
    stopping the server can close the idle keep-alive ones too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.channels = set()

    def log(self, request):
        """No access log."""

    def buildProtocol(self, addr):
        """Track each connection until it is lost."""
        channel = super().buildProtocol(addr)
        channels = self.channels
        channels.add(channel)
        lost = channel.connectionLost

        def connection_lost(reason):
            channels.discard(channel)
            return lost(reason)

        channel.connectionLost = connection_lost
        return channel

    def close_connections(self):
        """Close every open connection (after the responses being written)."""
        for channel in list(self.channels):
            # twisted.web's HTTP/1.1-or-2 wrapper keeps the transport on its inner channel.
            transport = getattr(channel, "transport", None) or getattr(
                getattr(channel, "_channel", None), "transport", None)
            if transport is not None:
                # Cut it, as a process exit would: a TLS loseConnection waits for the
                # peer's close_notify, which an idle or watching client may never send.
                transport.abortConnection()


class APIServerService(service.Service):
    """Opens the store, installs the initial objects, listens, writes the kubeconfig.

    ``listen(factory)`` returns a Deferred of the listening port (an endpoint's
    ``listen``). ``stopService`` stops listening, ends the watches and closes the store
    (its thread included). ``device_admission`` False stores Devices KubeEdge's admission
    webhook would refuse (see :class:`~.api.APIServer`).
    """

    log = Logger()
    name = "apiserver"

    def __init__(self, clock, store, listen, creds, kubeconfig_path=None,
                 registry=None, crds=None, advertise_host="127.0.0.1", watch_timeout=None,
                 bookmark_interval=None, device_admission=True):
        """Collaborators: the injected ``clock``, a :class:`Store`, ``listen``, the
        :class:`~.auth.APIServerCredentials` and where to write the kubeconfig (None: do
        not write one)."""
        self.clock = clock
        self.store = store
        self._listen = listen
        self.creds = creds
        self.kubeconfig_path = kubeconfig_path
        self.registry = registry if registry is not None else Registry(builtin_types())
        self.crds = kubeedge_crds() if crds is None else crds
        self.advertise_host = advertise_host
        self.watch_timeout = watch_timeout
        self.bookmark_interval = bookmark_interval
        self.device_admission = device_admission
        self.api = None
        self.resource = None
        self.site = None
        self.port = None
        #: Fires when start-up finished (with the port) or failed.
        self.ready = None
        #: The Failure that stopped start-up, if any.
        self.start_failure = None
        self._serving = False
        self._ready_waiters = []

    def when_ready(self):
        """A Deferred firing with this service once it serves (the kubeconfig at
        ``kubeconfig_path`` is written by then), or failing with what stopped start-up."""
        if self._serving:
            return defer.succeed(self)
        if self.start_failure is not None:
            return defer.fail(self.start_failure)
        d = defer.Deferred()
        self._ready_waiters.append(d)
        return d

    def _notify_ready(self, failure_=None):
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            if failure_ is None:
                d.callback(self)
            else:
                d.errback(failure_)

    def startService(self):
        """Start asynchronously; returns ``ready``, which fires when serving (a failure is
        logged critically and kept in ``start_failure``)."""
        super().startService()
        self.ready = defer.Deferred.fromCoroutine(self._start())
        self.ready.addErrback(self._start_failed)
        return self.ready

    async def _start(self):
        await self.store.open()
        self.api = APIServer(self.store, self.registry, self.clock,
                             device_admission=self.device_admission)
        await self.api.bootstrap(self.crds)
        options = {}
        if self.watch_timeout is not None:
            options["watch_timeout"] = self.watch_timeout
        self.resource = APIResource(self.api, auth.Authenticator(self.creds.token()),
                                    self.clock, bookmark_interval=self.bookmark_interval,
                                    **options)
        site = self.site = _QuietSite(self.resource, requestFactory=APIRequest,
                                      reactor=self.clock)
        site.displayTracebacks = False
        port = await self._listen(site)
        self.port = port
        actual = port.getHost().port
        address = "{}:{}".format(self.advertise_host, actual)
        self.resource.server_address = address
        host = "[{}]".format(self.advertise_host) if ":" in self.advertise_host else \
            self.advertise_host
        url = "https://{}:{}".format(host, actual)
        if self.kubeconfig_path is not None:
            auth.write_kubeconfig(self.kubeconfig_path, url, self.creds)
        self.log.info("apiserver serving {url} at resourceVersion {rv}; kubeconfig: "
                      "{kubeconfig} (KUBECONFIG={kubeconfig} kubectl get nodes)", url=url,
                      rv=self.store.current_rv, kubeconfig=self.kubeconfig_path,
                      log_event="apiserver_listening")
        self._serving = True
        self._notify_ready()
        return port

    def _start_failed(self, f):
        self.start_failure = f
        self._notify_ready(f)
        self.log.critical("apiserver failed to start: {error}", error=f.getErrorMessage(),
                          failure=f, log_event="apiserver_start_failed")
        return None

    @defer.inlineCallbacks
    def stopService(self):
        """Stop listening, end watches, close the store."""
        super().stopService()
        if self.ready is not None:
            yield self.ready
        self._serving = False
        if self._ready_waiters:
            self._notify_ready(failure.Failure(RuntimeError("the API server stopped")))
        if self.port is not None:
            port, self.port = self.port, None
            yield port.stopListening()
        if self.resource is not None:
            self.resource.stop_watches()
        if self.site is not None:
            self.site.close_connections()
        if self.api is not None:
            self.api.stop()
        if self.store.pool is not None:
            yield self.store.close()
        self.log.info("apiserver stopped", log_event="apiserver_stopped")


def create_apiserver(core, config, device_admission=True):
    """The API server from the cloud config: its credentials are made (or checked) now, in
    ``<state-dir>/apiserver/``, from the cloud CA, which is created like CloudHub does when
    it does not exist yet. Raises :class:`APIServerSetupError` on certificate problems.
    ``device_admission``: see :class:`APIServerService`."""
    api = config.modules.apiServer
    hub = config.modules.cloudHub
    ca, ca_key = config.resolve_path(hub.tlsCAFile), config.resolve_path(hub.tlsCAKeyFile)
    cert, key = config.resolve_path(hub.tlsCertFile), config.resolve_path(hub.tlsPrivateKeyFile)
    directory = os.path.join(config.state_dir, "apiserver")
    log = Logger()
    try:
        written = pki.ensure_cloud_pki(ca, ca_key, cert, key, ips=tuple(hub.advertiseAddress),
                                       dns_names=tuple(hub.dnsNames))
        creds, issued = auth.ensure_credentials(directory, ca, ca_key, address=api.address)
        options = auth.tls_options(creds)
    except (ValueError, OSError, crypto.Error, SSL.Error) as e:
        raise APIServerSetupError("apiServer certificates: {}".format(e)) from None
    for path in written + issued:
        log.info("apiserver created {path}", path=path, log_event="apiserver_pki_created")
    store = Store(config.resolve_path(api.dataSource), core.clock, window=DEFAULT_WINDOW)
    endpoint = endpoints.SSL4ServerEndpoint(core.clock, api.port, options,
                                            interface=api.address)
    advertise = api.address if api.address not in ("0.0.0.0", "::") else "127.0.0.1"
    return APIServerService(core.clock, store, endpoint.listen, creds,
                            kubeconfig_path=os.path.join(config.state_dir, KUBECONFIG_NAME),
                            advertise_host=advertise, device_admission=device_admission)
