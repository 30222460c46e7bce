"""The two twistd ``ServiceMaker``s. The plugin file and ``python -m kubeedge_tw`` both use
these objects; the tap modules they name are imported only when a side is run."""

from twisted.application.service import ServiceMaker

__all__ = ["CLOUD_MAKER", "EDGE_MAKER", "MAKERS"]

CLOUD_MAKER = ServiceMaker(
    "kubeedge-cloud", "kubeedge_tw.cloud.tap",
    "KubeEdge cloud side (cloudcore): CloudHub, EdgeController, SyncController, "
    "DeviceController.",
    "kubeedge-cloud")

EDGE_MAKER = ServiceMaker(
    "kubeedge-edge", "kubeedge_tw.edge.tap",
    "KubeEdge edge side (edgecore): EdgeHub, MetaManager, Edged, EventBus, DeviceTwin.",
    "kubeedge-edge")

MAKERS = (CLOUD_MAKER, EDGE_MAKER)
