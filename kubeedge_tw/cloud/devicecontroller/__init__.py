"""DeviceController (cloud module ``devicecontroller``); see :mod:`.controller`."""

from kubeedge_tw.cloud.devicecontroller.controller import DeviceController

__all__ = ["DeviceController", "create_devicecontroller"]


def create_devicecontroller(core, config):
    """DeviceController on the cloud's shared Kubernetes client and informers. Its Events
    go through the embedded control plane's event sink when that runs, else through one
    of its own."""
    controlplane = getattr(core, "controlplane", None)
    return DeviceController(core.clock, core.kube,
                            events=getattr(controlplane, "events", None))
