"""EdgeController (cloud module ``edgecontroller``); see :mod:`.controller`."""

from kubeedge_tw.cloud.edgecontroller.controller import EdgeController

__all__ = ["EdgeController", "create_edgecontroller"]


def create_edgecontroller(core, config):
    """EdgeController on the cloud's shared Kubernetes client and informers."""
    return EdgeController(core.clock, core.kube,
                          node_update_frequency=config.modules.edgeController.nodeUpdateFrequency)
