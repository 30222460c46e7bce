"""``twistd kubeedge-cloud``: options and the cloud side's service tree (KubeEdge cloudcore).

The tree is one :class:`~kubeedge_tw.common.core.Core` named ``kubeedge-cloud`` whose
children are the cloud modules the config enables, in KubeEdge's order.
"""

from kubeedge_tw.common import names
from kubeedge_tw.common.config import CLOUD
from kubeedge_tw.common.core import ModuleSpec, build_core
from kubeedge_tw.common.tap import (
    SideOptions, build_or_exit, exit_zero_after_clean_sigterm, freeze_startup_objects,
    prepare_state_dir)

__all__ = ["Options", "makeService", "create_cloud_service", "CLOUD_MODULE_SPECS"]


def _create_cloudhub(core, config):
    from kubeedge_tw.cloud.cloudhub import create_cloudhub
    return create_cloudhub(core, config)


def _create_edgecontroller(core, config):
    from kubeedge_tw.cloud.edgecontroller import create_edgecontroller
    return create_edgecontroller(core, config)


def _create_devicecontroller(core, config):
    from kubeedge_tw.cloud.devicecontroller import create_devicecontroller
    return create_devicecontroller(core, config)


def _create_synccontroller(core, config):
    from kubeedge_tw.cloud.synccontroller import create_synccontroller
    return create_synccontroller(core, config)


def _kube_client_factory(core, config, reactor):
    """How the shared Kubernetes client is made: from ``kubeAPIConfig`` for a real
    cluster, or from the embedded API server's kubeconfig once it serves."""
    from twisted.internet import defer

    from kubeedge_tw.cloud.k8s import K8sConfigError, client_from_config, make_kube_client
    from kubeedge_tw.cloud.k8s.kubeconfig import load_kubeconfig
    if not config.modules.apiServer.enable:
        return lambda: client_from_config(reactor, config)
    apiserver = getattr(core, "apiserver", None)
    if apiserver is None:
        return lambda: defer.fail(K8sConfigError(
            "modules.apiServer is enabled but this build has no embedded API server; "
            "set kubeAPIConfig.kubeConfig or master"))

    def from_embedded():
        d = defer.maybeDeferred(apiserver.when_ready)
        # The embedded server is local: limit the client as cloudcore v1.15 does its own
        # (qps 5 x nodeLimit, burst 10 x nodeLimit), not at a shared cluster's rate.
        node_limit = config.modules.cloudHub.nodeLimit
        d.addCallback(lambda _: make_kube_client(
            reactor, load_kubeconfig(apiserver.kubeconfig_path),
            qps=max(config.kubeAPIConfig.qps, 5 * node_limit),
            burst=max(config.kubeAPIConfig.burst, 10 * node_limit)))
        return d
    return from_embedded


def _shared_services(core, reactor):
    """The services cloud modules share, started before them: the embedded API server
    and its control plane (when enabled) and the Kubernetes client with its informers."""
    from kubeedge_tw.cloud.kube import KubeContext
    config = core.config
    if config.modules.apiServer.enable:
        from kubeedge_tw.cloud.apiserver import create_apiserver
        core.apiserver = create_apiserver(core, config)
        core.apiserver.setServiceParent(core)
    core.kube = KubeContext(core.clock, _kube_client_factory(core, config, reactor))
    core.kube.setServiceParent(core)
    if config.modules.apiServer.enable:
        # The embedded API server has no kube-scheduler or kube-controller-manager behind
        # it: run ours (scheduler, deployments, replica sets, node lifecycle, GC), each
        # starting once core.kube is ready.
        from kubeedge_tw.cloud.controlplane import create_controlplane
        core.controlplane = create_controlplane(core, config)
        core.controlplane.setServiceParent(core)


#: The cloud modules, in start order, with the config section that enables each. A
#: ``None`` factory is a KubeEdge module this build does not provide yet.
CLOUD_MODULE_SPECS = (
    ModuleSpec(names.CLOUDHUB, "cloudHub", _create_cloudhub),
    ModuleSpec(names.EDGECONTROLLER, "edgeController", _create_edgecontroller),
    ModuleSpec(names.DEVICECONTROLLER, "deviceController", _create_devicecontroller),
    ModuleSpec(names.SYNCCONTROLLER, "syncController", _create_synccontroller),
)


class Options(SideOptions):
    """Command line of ``twistd kubeedge-cloud``."""

    kind = CLOUD
    side = "kubeedge-cloud"
    synopsis = "[options]"
    longdesc = ("Run KubeEdge's cloud side (cloudcore): CloudHub, EdgeController, "
                "SyncController and DeviceController.")


def create_cloud_service(config, reactor):
    """Build the cloud side's service tree from a loaded config."""
    prepare_state_dir(config.state_dir)
    return build_or_exit("kubeedge-cloud", lambda: build_core(
        "kubeedge-cloud", reactor, config, CLOUD_MODULE_SPECS,
        before_modules=lambda core: _shared_services(core, reactor)))


def makeService(options):
    """twistd entry point: the cloud service tree for the parsed ``options``."""
    from twisted.internet import reactor
    exit_zero_after_clean_sigterm(reactor)
    freeze_startup_objects(reactor)
    return create_cloud_service(options["loaded-config"], reactor)
