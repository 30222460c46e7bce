"""Pod status as kubelet computes it: container statuses, phase, conditions, QoS class.

Pure functions of what the runtime reports, what edged decided (a container's waiting
reason) and the probes' verdicts; edged sends the result to MetaManager as
``{"UID", "Name", "Status"}`` whenever it changes (reference 2.9).
"""

from kubeedge_tw.edge.edged.spec import ALWAYS, NEVER, parse_quantity

__all__ = [
    "container_status", "pod_phase", "pod_conditions", "qos_class", "build_pod_status",
    "terminated_state", "CONTAINER_CREATING", "CRASH_LOOP_BACK_OFF", "PENDING", "RUNNING",
    "SUCCEEDED", "FAILED",
]

PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
CONTAINER_CREATING = "ContainerCreating"
CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"


def terminated_state(info, runtime_name="docker"):
    """The ``terminated`` state of a dead container run, with kubelet's reasons."""
    if info.oom_killed:
        reason = "OOMKilled"
    elif info.error and not info.started_at:
        reason = "ContainerCannotRun"
    elif info.exit_code == 0:
        reason = "Completed"
    else:
        reason = "Error"
    state = {"exitCode": info.exit_code, "reason": reason,
             "startedAt": info.started_at or None, "finishedAt": info.finished_at or None,
             "containerID": "{}://{}".format(runtime_name, info.id)}
    if info.error:
        state["message"] = info.error
    return state


def container_status(name, image, runs, waiting=None, ready=False, runtime_name="docker"):
    """The v1.ContainerStatus of one spec container.

    ``runs`` are its container runs, newest first; ``waiting`` is edged's
    ``(reason, message)`` for why it has no running container now (or None); ``ready``
    the readiness verdict for a running container."""
    latest = runs[0] if runs else None
    previous = runs[1] if len(runs) > 1 else None
    status = {"name": name, "state": {}, "lastState": {}, "ready": False,
              "restartCount": latest.restart_count if latest else 0, "image": image,
              "imageID": "", "started": False}
    if latest is not None:
        status["containerID"] = "{}://{}".format(runtime_name, latest.id)
        if latest.image_id:
            status["imageID"] = "{}://{}".format(runtime_name, latest.image_id)
    if latest is not None and latest.running:
        status["state"] = {"running": {"startedAt": latest.started_at or None}}
        status["ready"] = bool(ready)
        status["started"] = True
        if previous is not None and previous.dead:
            status["lastState"] = {"terminated": terminated_state(previous, runtime_name)}
    elif waiting is not None:
        reason, message = waiting
        status["state"] = {"waiting": {"reason": reason, "message": message} if message
                           else {"reason": reason}}
        if latest is not None and latest.dead:
            status["lastState"] = {"terminated": terminated_state(latest, runtime_name)}
    elif latest is not None and latest.dead:
        status["state"] = {"terminated": terminated_state(latest, runtime_name)}
        if previous is not None and previous.dead:
            status["lastState"] = {"terminated": terminated_state(previous, runtime_name)}
    else:
        status["state"] = {"waiting": {"reason": CONTAINER_CREATING}}
    return status


def pod_phase(restart_policy, statuses):
    """kubelet's ``getPhase`` over container statuses."""
    running = waiting = stopped = succeeded = unknown = 0
    for status in statuses:
        state = status.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif "waiting" in state:
            if (status.get("lastState") or {}).get("terminated"):
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1
    if waiting:
        return PENDING
    if running:
        return RUNNING if not unknown else PENDING
    if stopped and not unknown:
        if restart_policy == ALWAYS:
            return RUNNING
        if stopped == succeeded:
            return SUCCEEDED
        if restart_policy == NEVER:
            return FAILED
        return RUNNING
    return PENDING


def _condition(kind, ok, now, previous, reason="", message=""):
    status = "True" if ok else "False"
    before = previous.get(kind)
    since = before["lastTransitionTime"] if before and before.get("status") == status \
        and before.get("lastTransitionTime") else now
    condition = {"type": kind, "status": status, "lastProbeTime": None,
                 "lastTransitionTime": since}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def pod_conditions(phase, statuses, now, previous_conditions=()):
    """Initialized, Ready, ContainersReady, PodScheduled (kubelet's order); transition
    times are kept from ``previous_conditions`` while a condition does not change."""
    previous = {c.get("type"): c for c in previous_conditions or () if isinstance(c, dict)}
    unready = [s["name"] for s in statuses if not s.get("ready")]
    ready = not unready and bool(statuses)
    if ready:
        reason = message = ""
    elif phase == SUCCEEDED:
        reason, message = "PodCompleted", ""
    else:
        reason = "ContainersNotReady"
        message = "containers with unready status: [{}]".format(" ".join(unready))
    return [
        _condition("Initialized", True, now, previous),
        _condition("Ready", ready, now, previous, reason, message),
        _condition("ContainersReady", ready, now, previous, reason, message),
        _condition("PodScheduled", True, now, previous),
    ]


def qos_class(containers):
    """``Guaranteed``, ``Burstable`` or ``BestEffort`` from the containers' resources."""
    any_set, guaranteed = False, True
    for container in containers:
        resources = container.get("resources") if isinstance(container, dict) else None
        resources = resources if isinstance(resources, dict) else {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        if limits or requests:
            any_set = True
        for kind in ("cpu", "memory"):
            limit = limits.get(kind)
            request = requests.get(kind, limit)
            try:
                if limit is None or parse_quantity(limit) != parse_quantity(request):
                    guaranteed = False
            except ValueError:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def build_pod_status(restart_policy, container_statuses, containers, node_ip, start_time, now,
                     previous=None, message=""):
    """The v1.PodStatus of a pod."""
    previous = previous or {}
    phase = pod_phase(restart_policy, container_statuses)
    status = {
        "phase": phase,
        "conditions": pod_conditions(phase, container_statuses, now,
                                     previous.get("conditions")),
        "hostIP": node_ip,
        "podIP": node_ip,
        "podIPs": [{"ip": node_ip}],
        "startTime": start_time,
        "containerStatuses": container_statuses,
        "qosClass": qos_class(containers),
    }
    if message:
        status["message"] = message
    return status
