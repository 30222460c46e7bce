"""MetaManager (edge module ``metaManager``): the sqlite cache that keeps the edge working
while the cloud is away. :func:`create_metamanager` builds it from the edge config."""

from kubeedge_tw.common.core import SetupError
from kubeedge_tw.edge.metamanager.manager import MetaManager
from kubeedge_tw.edge.metamanager.store import MetaStore, StoreError, check_and_upgrade

__all__ = ["MetaManager", "MetaStore", "create_metamanager"]


class MetaManagerSetupError(SetupError):
    """The edge database cannot be used; the edge must not start."""


def create_metamanager(core, config):
    """MetaManager over ``database.dataSource`` (checked and upgraded first)."""
    path = config.resolve_path(config.database.dataSource)
    try:
        check_and_upgrade(path)
    except (StoreError, OSError) as e:
        raise MetaManagerSetupError(str(e)) from None
    section = config.modules.metaManager
    return MetaManager(core.clock, MetaStore(path, reactor=core.clock),
                       remote_query_timeout=section.remoteQueryTimeout,
                       pod_status_sync_interval=section.podStatusSyncInterval,
                       namespace=config.modules.edged.registerNodeNamespace)
