"""CloudHub (cloud module ``cloudhub``): the TLS websocket server edges dial.

:func:`create_cloudhub` builds it from the cloud config; see :mod:`.hub` for what it does.
"""

from twisted.internet import endpoints
from twisted.logger import Logger

from kubeedge_tw.certs.bootstrap import BootstrapResource, BootstrapService
from kubeedge_tw.cloud.cloudhub.hub import CloudHub
from kubeedge_tw.cloud.cloudhub.longlived import LongLivedFreezer
from kubeedge_tw.common import pki, tls
from kubeedge_tw.common.core import SetupError

__all__ = ["CloudHub", "create_cloudhub", "CloudHubSetupError"]

log = Logger()

#: Listen queue of the websocket port (Twisted's default is 50).
LISTEN_BACKLOG = 1024


class CloudHubSetupError(SetupError):
    """CloudHub cannot be built from the config (certificates); the message says why."""


def create_cloudhub(core, config):
    """CloudHub from ``modules.cloudHub``: creates the CA and server certificate in the
    state dir on first start (never overwriting), then serves mutual TLS."""
    hub = config.modules.cloudHub
    ca, ca_key = config.resolve_path(hub.tlsCAFile), config.resolve_path(hub.tlsCAKeyFile)
    cert, key = config.resolve_path(hub.tlsCertFile), config.resolve_path(hub.tlsPrivateKeyFile)
    try:
        written = pki.ensure_cloud_pki(ca, ca_key, cert, key, ips=tuple(hub.advertiseAddress),
                                       dns_names=tuple(hub.dnsNames))
        options = tls.server_options(ca, cert, key)
    except (ValueError, OSError, tls.TLSFilesError) as e:
        raise CloudHubSetupError("cloudHub certificates: {}".format(e)) from None
    for path in written:
        log.info("cloudhub created {path}", path=path, log_event="cloudhub_pki_created")
    reactor = core.clock
    if hub.https.enable:
        _add_bootstrap_server(core, config, reactor, ca, ca_key, cert, key)
    # A deep accept queue: thousands of edges reconnect at once after a cloud restart.
    endpoint = endpoints.SSL4ServerEndpoint(reactor, hub.websocket.port, options,
                                            backlog=LISTEN_BACKLOG,
                                            interface=hub.websocket.address)
    return CloudHub(
        core.clock, listen=endpoint.listen, address=hub.websocket.address,
        port=hub.websocket.port, node_limit=hub.nodeLimit,
        keepalive_interval=hub.keepaliveInterval, allow_any_node_cert=hub.allowAnyNodeCert,
        max_message_size=hub.maxMessageSize,
        # Thousands of connections are millions of long-lived objects: keep them out of
        # the garbage collector's full passes (see longlived.py).
        long_lived=LongLivedFreezer(core.clock))


def _add_bootstrap_server(core, config, reactor, ca, ca_key, cert, key):
    """The HTTPS bootstrap server (``/ca.crt``, ``/edge.crt``) as a child of the cloud
    tree, started before CloudHub."""
    https = config.modules.cloudHub.https
    try:
        options = tls.server_options(ca, cert, key, require_client_cert=False)
        resource = BootstrapResource(pki.load_cert(ca), pki.load_key(ca_key), reactor,
                                     cert_days=config.modules.cloudHub.edgeCertSigningDuration)
    except (ValueError, OSError, tls.TLSFilesError) as e:
        raise CloudHubSetupError("cloudHub.https certificates: {}".format(e)) from None
    endpoint = endpoints.SSL4ServerEndpoint(reactor, https.port, options,
                                            interface=https.address)
    BootstrapService(endpoint.listen, resource).setServiceParent(core)
