"""DeviceController (cloud module ``devicecontroller``); see :mod:`.controller`."""

from kubeedge_tw.cloud.devicecontroller.controller import DeviceController

__all__ = ["DeviceController", "create_devicecontroller"]


def create_devicecontroller(core, config):
    """DeviceController on the cloud's shared Kubernetes client and informers."""
    return DeviceController(core.clock, core.kube)
