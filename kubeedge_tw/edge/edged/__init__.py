"""Edged (edge module ``edged``, group ``edged``): the node's pods as Docker containers.

:mod:`.edged` holds the module, :mod:`.runtime` the runtime interface it drives and
:mod:`.docker_runtime` its Docker implementation (docker SDK on the ``docker`` thread
pool of :mod:`.pool`); :mod:`.spec`, :mod:`.configs`, :mod:`.volumes`, :mod:`.probes`,
:mod:`.status`, :mod:`.node`, :mod:`.gc` and :mod:`.server` are its parts.
:func:`create_edged` builds it from the edge config.
"""

import os

from twisted.internet.endpoints import TCP4ServerEndpoint

from kubeedge_tw.edge.edged.docker_runtime import DockerRuntime
from kubeedge_tw.edge.edged.edged import Edged, PodRecord
from kubeedge_tw.edge.edged.pool import MAX_THREADS, POOL_NAME, BlockingPool, InlinePool
from kubeedge_tw.edge.edged.probes import Prober
from kubeedge_tw.edge.edged.runtime import IContainerRuntime

__all__ = ["Edged", "PodRecord", "DockerRuntime", "IContainerRuntime", "BlockingPool",
           "InlinePool", "Prober", "create_edged", "READ_ONLY_HOST"]

#: The read-only API listens on loopback only, as kubelet's read-only port is meant to.
READ_ONLY_HOST = "127.0.0.1"


def create_edged(core, config):
    """Build :class:`Edged` from ``config.modules.edged`` on ``core.clock``: the Docker
    runtime at ``dockerAddress`` on a ``docker`` thread pool, the read-only API on
    127.0.0.1:``readOnlyPort`` (0: none), volumes under ``<stateDir>/edged``."""
    from kubeedge_tw.edge.edgehub.hub import edge_node_name
    section = config.modules.edged
    pool = BlockingPool(core.clock, POOL_NAME, MAX_THREADS)
    runtime = DockerRuntime(pool, base_url=section.dockerAddress,
                            timeout=section.runtimeRequestTimeout * 60)
    endpoint = None
    if section.readOnlyPort:
        endpoint = TCP4ServerEndpoint(core.clock, section.readOnlyPort,
                                      interface=READ_ONLY_HOST)
    return Edged(
        core.clock, runtime=runtime, pool=pool, prober=Prober(core.clock, runtime),
        node_name=edge_node_name(config), volume_root=os.path.join(config.state_dir, "edged"),
        namespace=section.registerNodeNamespace, register_node=section.registerNode,
        node_status_frequency=section.nodeStatusUpdateFrequency, node_ip=section.nodeIP,
        interface_name=section.interfaceName, version=section.version,
        # MetaManager may ask the cloud first (remoteQueryTimeout): wait a little longer.
        query_timeout=config.modules.metaManager.remoteQueryTimeout + 5,
        http_endpoint=endpoint, memory_capacity=section.edgedMemoryCapacity,
        image_gc_high=section.imageGCHighThreshold, image_gc_low=section.imageGCLowThreshold,
        keep_dead=section.maximumDeadContainersPerPod)
