"""``twistd kubeedge-edge``: options and the edge side's service tree (KubeEdge edgecore).

The tree is one :class:`~kubeedge_tw.common.core.Core` named ``kubeedge-edge`` whose
children are the edge modules the config enables, in KubeEdge's order.
"""

from kubeedge_tw.common import names
from kubeedge_tw.common.config import EDGE
from kubeedge_tw.common.core import ModuleSpec, build_core
from kubeedge_tw.common.tap import (
    SideOptions, build_or_exit, check_host_port, check_node_name,
    exit_zero_after_clean_sigterm, freeze_startup_objects,
    prepare_state_dir)
from kubeedge_tw.edge.edgehub import create_edgehub

__all__ = ["Options", "makeService", "create_edge_service", "EDGE_MODULE_SPECS"]


def _lazy(module, factory):
    """A module factory that imports its package only when the module is enabled, so a
    disabled module costs no memory (the docker SDK alone is ~6 MiB of RSS)."""
    def create(core, config):
        import importlib
        return getattr(importlib.import_module(module), factory)(core, config)
    create.__name__ = factory
    return create


#: The edge modules, in start order, with the config section that enables each. A
#: ``None`` factory is a KubeEdge module this build does not provide yet.
EDGE_MODULE_SPECS = (
    ModuleSpec(names.EDGEHUB, "edgeHub", create_edgehub),
    ModuleSpec(names.METAMANAGER, "metaManager",
               _lazy("kubeedge_tw.edge.metamanager", "create_metamanager")),
    ModuleSpec(names.EDGED, "edged", _lazy("kubeedge_tw.edge.edged", "create_edged")),
    ModuleSpec(names.DEVICETWIN, "deviceTwin",
               _lazy("kubeedge_tw.edge.devicetwin", "create_devicetwin")),
    ModuleSpec(names.EVENTBUS, "eventBus", _lazy("kubeedge_tw.edge.eventbus", "create_eventbus")),
    ModuleSpec(names.SERVICEBUS, "serviceBus", None),
)


class Options(SideOptions):
    """Command line of ``twistd kubeedge-edge``."""

    kind = EDGE
    side = "kubeedge-edge"
    synopsis = "[options]"
    longdesc = ("Run KubeEdge's edge side (edgecore): EdgeHub, MetaManager, Edged, "
                "EventBus and DeviceTwin.")

    optParameters = SideOptions.optParameters + [
        ["node-name", None, None, "This edge's node name (modules.edged.hostnameOverride)."],
        ["cloud", None, None, "CloudHub websocket address HOST:PORT "
                              "(modules.edgeHub.websocket.server)."],
    ]

    def overrides(self):
        result = super().overrides()
        if self["node-name"] is not None:
            result["modules.edged.hostnameOverride"] = check_node_name(self["node-name"])
        if self["cloud"] is not None:
            result["modules.edgeHub.websocket.server"] = check_host_port("--cloud",
                                                                         self["cloud"])
        return result


def create_edge_service(config, reactor):
    """Build the edge side's service tree from a loaded config."""
    prepare_state_dir(config.state_dir)
    return build_or_exit("kubeedge-edge", lambda: build_core(
        "kubeedge-edge", reactor, config, EDGE_MODULE_SPECS))


def makeService(options):
    """twistd entry point: the edge service tree for the parsed ``options``."""
    from twisted.internet import reactor
    exit_zero_after_clean_sigterm(reactor)
    freeze_startup_objects(reactor)
    return create_edge_service(options["loaded-config"], reactor)
