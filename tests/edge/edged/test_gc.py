"""Garbage collection policy: which dead containers and unused images go."""

from twisted.trial.unittest import SynchronousTestCase

from kubeedge_tw.edge.edged.gc import dead_containers_to_remove, images_to_remove, sort_runs
from kubeedge_tw.edge.edged.runtime import (
    LABEL_CONTAINER_NAME, LABEL_POD_UID, LABEL_RESTART_COUNT, ContainerInfo, FsUsage,
    ImageInfo)


def run(cid, uid="u1", name="c", restart=0, state="exited"):
    return ContainerInfo(id=cid, name=cid, labels={
        LABEL_POD_UID: uid, LABEL_CONTAINER_NAME: name, LABEL_RESTART_COUNT: str(restart)},
        image="i", image_id="sha256:i", state=state, created=float(restart))


class ContainerGCTests(SynchronousTestCase):
    """Dead container runs beyond the newest per container are removed."""

    def test_keep_newest_dead(self):
        """With a running newest run, one dead run stays and older ones go."""
        runs = [run("r0", restart=0), run("r1", restart=1), run("r2", restart=2),
                run("r3", restart=3, state="running")]
        removed = dead_containers_to_remove(runs, {"u1"}, keep=1)
        self.assertEqual(sorted(r.id for r in removed), ["r0", "r1"])

    def test_newest_run_never_removed(self):
        """The newest run stays even with keep=0 (its labels hold the restart count)."""
        runs = [run("r0", restart=0), run("r1", restart=1)]
        self.assertEqual([r.id for r in dead_containers_to_remove(runs, {"u1"}, keep=0)],
                         ["r0"])

    def test_unknown_pods_and_sorting(self):
        """Every dead run of a pod edged no longer has goes; runs sort newest first."""
        runs = [run("a", uid="gone"), run("b", uid="gone", restart=1),
                run("c", uid="gone", restart=2, state="running")]
        self.assertEqual(sorted(r.id for r in dead_containers_to_remove(runs, set())),
                         ["a", "b"])
        self.assertEqual([r.id for r in sort_runs(runs)], ["c", "b", "a"])


class ImageGCTests(SynchronousTestCase):
    """Unused images go, oldest first, once usage passes the high threshold."""

    def test_below_threshold(self):
        """Under the high threshold nothing is removed."""
        usage = FsUsage(capacity=100, available=30)
        self.assertEqual(images_to_remove([ImageInfo("a", size=10)], set(), usage, 80, 40), [])

    def test_frees_down_to_low_threshold(self):
        """Above it, unused images are chosen oldest first until usage would reach low."""
        usage = FsUsage(capacity=100, available=10)  # 90 % used; to 40 % means 50 bytes
        images = [ImageInfo("new", size=30, created=3), ImageInfo("used", size=30, created=1),
                  ImageInfo("old", size=30, created=2), ImageInfo("older", size=30, created=0)]
        chosen = images_to_remove(images, {"used"}, usage, 80, 40)
        self.assertEqual([i.id for i in chosen], ["older", "old"])
