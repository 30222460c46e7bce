"""SyncController (cloud module ``synccontroller``); see :mod:`.controller`."""

from kubeedge_tw.cloud.synccontroller.controller import SyncController
from kubeedge_tw.common import names
from kubeedge_tw.common.core import SetupError

__all__ = ["SyncController", "create_synccontroller"]


def create_synccontroller(core, config):
    """SyncController over the CloudHub and EdgeController of the same cloud tree."""
    for needed in (names.CLOUDHUB, names.EDGECONTROLLER):
        if not core.bus.has_module(needed):
            raise SetupError("syncController needs module {} (enable it, or disable "
                             "syncController)".format(needed))
    return SyncController(core.clock, core.kube, core.bus.module(names.EDGECONTROLLER),
                          core.bus.module(names.CLOUDHUB),
                          resync_period=config.modules.syncController.resyncPeriod)
