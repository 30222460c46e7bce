"""``twistd kubeedge-cloud``: options and the cloud side's service tree (KubeEdge cloudcore).

The tree is one :class:`~kubeedge_tw.common.core.Core` named ``kubeedge-cloud`` whose
children are the cloud modules the config enables, in KubeEdge's order.
"""

from kubeedge_tw.common import names
from kubeedge_tw.common.config import CLOUD
from kubeedge_tw.common.core import ModuleSpec, build_core
from kubeedge_tw.common.tap import (
    SideOptions, build_or_exit, exit_zero_after_clean_sigterm, prepare_state_dir)

__all__ = ["Options", "makeService", "create_cloud_service", "CLOUD_MODULE_SPECS"]

def _create_cloudhub(core, config):
    from kubeedge_tw.cloud.cloudhub import create_cloudhub
    return create_cloudhub(core, config)


#: The cloud modules, in start order, with the config section that enables each. A
#: ``None`` factory is a KubeEdge module this build does not provide yet.
CLOUD_MODULE_SPECS = (
    ModuleSpec(names.CLOUDHUB, "cloudHub", _create_cloudhub),
    ModuleSpec(names.EDGECONTROLLER, "edgeController", None),
    ModuleSpec(names.DEVICECONTROLLER, "deviceController", None),
    ModuleSpec(names.SYNCCONTROLLER, "syncController", None),
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
        "kubeedge-cloud", reactor, config, CLOUD_MODULE_SPECS))


def makeService(options):
    """twistd entry point: the cloud service tree for the parsed ``options``."""
    from twisted.internet import reactor
    exit_zero_after_clean_sigterm(reactor)
    return create_cloud_service(options["loaded-config"], reactor)
