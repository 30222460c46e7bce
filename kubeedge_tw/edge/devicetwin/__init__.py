"""DeviceTwin, the edge's device store (KubeEdge module ``twin``, group ``twin``).

:mod:`.twin` holds the module and its factory, :mod:`.logic` the twin and attribute rules,
:mod:`.model` the values and payloads, :mod:`.store` the sqlite tables.
"""

from kubeedge_tw.edge.devicetwin.logic import REST, SYNC, build_delta, deal_attrs, deal_twins
from kubeedge_tw.edge.devicetwin.model import Attr, Device, PayloadError, Twin, TwinValue, Version
from kubeedge_tw.edge.devicetwin.store import DeviceStore, StoreError, WriteFailed, prepare_database
from kubeedge_tw.edge.devicetwin.twin import DeviceTwin, create_devicetwin, parse_topic

__all__ = [
    "DeviceTwin", "create_devicetwin", "parse_topic", "DeviceStore", "StoreError",
    "WriteFailed", "prepare_database", "Device", "Attr", "Twin", "TwinValue", "Version",
    "PayloadError", "REST", "SYNC", "deal_twins", "deal_attrs", "build_delta",
]
