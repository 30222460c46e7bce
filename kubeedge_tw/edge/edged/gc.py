"""Garbage collection policy for dead containers and unused images (reference 5,
Images/GC): which ones to remove. Edged runs the removals on its timers.

* Containers: per (pod, container) the newest ``keep`` dead runs stay (for
  ``kubectl logs --previous``; KubeEdge keeps 1) and the newest run is never removed, since
  its labels carry the restart count. Runs of pods edged no longer has all go.
* Images: when the image filesystem is used above the high threshold, images no container
  uses and no pod wants are removed, oldest first, until usage would be at the low one
  (kubelet's ``imageGCManager``).
"""

from kubeedge_tw.edge.edged.runtime import CREATED, LABEL_CONTAINER_NAME, LABEL_POD_UID

__all__ = ["sort_runs", "dead_containers_to_remove", "images_to_remove"]


def sort_runs(runs):
    """Container runs newest first: by restart count, then creation time."""
    return sorted(runs, key=lambda r: (r.restart_count, r.created), reverse=True)


def dead_containers_to_remove(infos, known_uids, keep=1):
    """The container runs to remove among ``infos`` (edged's containers)."""
    groups = {}
    for info in infos:
        groups.setdefault((info.label(LABEL_POD_UID), info.label(LABEL_CONTAINER_NAME)),
                          []).append(info)
    remove = []
    for (uid, _), runs in sorted(groups.items()):
        runs = sort_runs(runs)
        if uid not in known_uids:
            remove.extend(r for r in runs if r.dead or r.state == CREATED)
            continue
        kept = 0
        for index, run in enumerate(runs):
            if index == 0:
                if run.dead:
                    kept += 1
                continue
            if run.dead and kept < keep:
                kept += 1
                continue
            if run.dead or run.state == CREATED:
                remove.append(run)
    return remove


def images_to_remove(images, in_use, usage, high, low):
    """Images to remove so that ``usage`` goes from above ``high`` percent down to
    ``low`` percent; ``in_use`` holds the ids that must stay."""
    if usage.capacity <= 0 or usage.used_percent < high:
        return []
    to_free = usage.capacity * (100 - low) / 100.0 - usage.available
    chosen, freed = [], 0
    for image in sorted(images, key=lambda i: (i.created, i.id)):
        if freed >= to_free:
            break
        if image.id in in_use:
            continue
        chosen.append(image)
        freed += image.size
    return chosen
