"""Swarm process of ``bench/e2e_latency.py``: simulated v1.15 edges that register their node,
take pods and report them Running.

Started by the orchestrator, never by hand. The connections are ``bench/_hub_swarm.py``'s
(:class:`~_hub_swarm.Swarm`: TLS websockets with the shared client certificate, v1.15
headers and path, a keepalive every ``--keepalive`` seconds, at most ``inflight``
handshakes at once). On top of that each edge behaves like edgecore v1.15 with a kubelet
that starts containers instantly:

* as soon as its connection opens it registers its node: ``insert`` on
  ``default/node/<node>`` (source ``edged``, group ``meta``, sync), the Node object edged
  sends; the cloud answers ``response`` with ``{"Object": <Node>, "Err": null}``;
* it acknowledges every cloud message that needs it (``response`` ``OK``, parent = its
  ``msg_id``), as MetaManager does once the object is stored;
* when a pod ``update``/``insert`` arrives it records the time (``time.monotonic``:
  CLOCK_MONOTONIC is system-wide on Linux, so the orchestrator's stamps compare) and at
  once sends the pod's status Running: ``update`` on ``<ns>/podstatus/<name>`` with
  ``{"UID", "Name", "Status"}`` (phase Running, Ready True, one running ready container),
  what MetaManager forwards for edged. Copies of a pod already seen (ACK-timeout resends)
  are ACKed and counted, not reported again, as MetaManager does with an unchanged object.

Control channel as in ``_hub_swarm.py``. Commands: ``ramp``, ``status`` (with
registration and delivery counts), ``report`` (per pod: first delivery time), ``quit``.
"""

import argparse
import collections
import datetime
import json
import os
import sys
import time

# Measure the working tree, not whatever copy of the package is installed.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from twisted.internet import task  # noqa: E402

from _hub_swarm import Swarm, run_swarm  # noqa: E402
from kubeedge_tw.cloud.cloudhub.session import needs_ack  # noqa: E402
from kubeedge_tw.common import message as m  # noqa: E402
from kubeedge_tw.common import names  # noqa: E402
from kubeedge_tw.common.resource import ResourceError, parse_edge_resource  # noqa: E402

POD_OPERATIONS = (names.OP_INSERT, names.OP_UPDATE)


def node_object(node):
    """The Node a v1.15 edged registers (as ``ScriptedEdged.register`` in
    tests/integration/test_controllers_e2e.py, named for this node)."""
    return {"metadata": {"name": node, "labels": {"node-role.kubernetes.io/agent": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "reason": "EdgeReady"}],
                       "nodeInfo": {"kubeletVersion": "v1.26.15-kubeedge-tw"},
                       "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}}


def running_status(pod, started_at):
    """The pod status edged reports once the containers run: ``{"UID", "Name",
    "Status"}`` with phase Running, Ready True and every container running and ready."""
    meta = pod.get("metadata") or {}
    containers = (pod.get("spec") or {}).get("containers") or [{"name": "c"}]
    status = {"phase": "Running", "podIP": "127.0.0.1", "hostIP": "127.0.0.1",
              "startTime": started_at,
              "conditions": [{"type": t, "status": "True", "lastTransitionTime": started_at}
                             for t in ("PodScheduled", "Initialized", "ContainersReady",
                                       "Ready")],
              "containerStatuses": [{"name": c.get("name", "c"), "ready": True,
                                     "restartCount": 0, "image": c.get("image", ""),
                                     "imageID": "", "containerID": "docker://bench",
                                     "started": True,
                                     "state": {"running": {"startedAt": started_at}}}
                                    for c in containers]}
    return {"UID": meta.get("uid", ""), "Name": meta.get("name", ""), "Status": status}


class E2ESwarm(Swarm):
    """The hub bench's swarm, plus node registration, pods and pod status."""

    def __init__(self, reactor, args):
        super().__init__(reactor, args)
        self.registering = {}          # msg_id -> (edge, time sent)
        self.registered = {}           # node -> seconds from insert to response
        self.register_errors = collections.Counter()
        self.delivered = {}            # "ns/name" -> monotonic time of the first copy
        self.delivered_node = {}       # "ns/name" -> node it came to
        self.pod_copies = 0            # copies of pods already seen (resends)
        self.statuses_sent = 0
        self.ops_seen = collections.Counter()

    # -- registration -----------------------------------------------------------------------

    def edge_opened(self, edge):
        super().edge_opened(edge)
        message = m.new_message(names.EDGED, names.META_GROUP, names.OP_INSERT,
                                "default/node/" + edge.node, node_object(edge.node),
                                sync=True)
        self.registering[message.msg_id] = (edge, time.monotonic())
        edge.send(message)

    def _registered(self, message, now):
        edge, sent = self.registering.pop(message.parent_msg_id)
        content = message.content_object() if message.operation == names.OP_RESPONSE \
            else None
        if isinstance(content, dict) and content.get("Err") is None \
                and isinstance(content.get("Object"), dict):
            self.registered[edge.node] = now - sent
        else:
            self.register_errors["{}: {}".format(message.operation,
                                                 json.dumps(content)[:120]
                                                 if content is not None
                                                 else str(message.content)[:120])] += 1

    # -- what the cloud sends ---------------------------------------------------------------

    def edge_frame(self, edge, payload):
        now = time.monotonic()
        self.frames_received += 1
        message = m.decode(payload)
        self.ops_seen[message.operation] += 1
        if message.operation in (names.OP_RESPONSE, names.OP_ERROR):
            if message.parent_msg_id in self.registering:
                self._registered(message, now)
            else:
                self.errors["{} {}".format(message.operation, message.resource)[:120]] += 1
            return
        if needs_ack(message):
            edge.send(m.new_response(message, "OK"))
            self.acks_sent += 1
        if message.operation not in POD_OPERATIONS:
            return
        try:
            parts = parse_edge_resource(message.resource)
        except ResourceError:
            return
        if parts.type != names.RES_POD or not parts.name:
            return
        key = "{}/{}".format(parts.namespace, parts.name)
        if key in self.delivered:
            self.pod_copies += 1
            return
        self.delivered[key] = now
        self.delivered_node[key] = edge.node
        pod = message.content_object()
        started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        edge.send(m.new_message(
            names.EDGED, names.META_GROUP, names.OP_UPDATE,
            "{}/{}/{}".format(parts.namespace, names.RES_PODSTATUS, parts.name),
            running_status(pod if isinstance(pod, dict) else {}, started)))
        self.statuses_sent += 1

    # -- commands ---------------------------------------------------------------------------

    def cmd_status(self, request):
        reply = super().cmd_status(request)
        reply.update(registered=len(self.registered),
                     register_pending=len(self.registering),
                     register_errors=dict(self.register_errors.most_common(5)),
                     delivered=len(self.delivered), pod_copies=self.pod_copies,
                     statuses_sent=self.statuses_sent, ops_seen=dict(self.ops_seen),
                     errors=dict(self.errors.most_common(5)))
        return reply

    def cmd_report(self, request):
        """Per pod ``ns/name``: [first delivery time, node]; registration times."""
        return {"delivered": {k: [t, self.delivered_node[k]]
                              for k, t in self.delivered.items()},
                "register_seconds": list(self.registered.values())}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--keepalive", type=float, default=15)
    parser.add_argument("--max-seconds", type=float, default=900)
    args = parser.parse_args(argv)
    args.edge_ping = False  # a v1.15 edge sends no websocket pings
    return args


def main(reactor, argv):
    return run_swarm(reactor, parse_args(argv), E2ESwarm)


if __name__ == "__main__":
    task.react(main, (sys.argv[1:],))
