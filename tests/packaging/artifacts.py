"""Checks of the built .pyz files and .debs; scripts/test.sh runs them in its distribution
block right after building, as ``trial tests.packaging.artifacts`` (this module is not named
``test_*`` so that the normal ``trial tests`` run, which builds nothing, does not collect it).

Environment:

* ``KUBEEDGE_TW_DIST_DIR``: where scripts/build_pyz.sh and scripts/build_deb.sh put their
  output (dist/). Without it every test here is skipped.
* ``KUBEEDGE_TW_ARM64_ROOTFS``: the emulated arm64 rootfs of tests/arm/rootfs.sh, for
  installing the arm64 .debs with dpkg under qemu. Without it (or without root) that test
  is skipped.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import zipfile

from twisted.trial.unittest import SynchronousTestCase

import kubeedge_tw
from tests.packaging import TOP

DIST = os.environ.get("KUBEEDGE_TW_DIST_DIR")
ROOTFS = os.environ.get("KUBEEDGE_TW_ARM64_ROOTFS")
VERSION = kubeedge_tw.__version__
HOST_ARCH = os.uname().machine
DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
SYSTEM_PYTHON = "/usr/bin/python3"


def run(argv, **kwargs):
    kwargs.setdefault("timeout", 300)
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


class DistTestCase(SynchronousTestCase):
    """Skipped unless KUBEEDGE_TW_DIST_DIR names the build output."""

    def setUp(self):
        if not DIST:
            raise self.skipTest("KUBEEDGE_TW_DIST_DIR is not set (scripts/test.sh sets it "
                                "after building the .pyz files and .debs)")

    def artifact(self, name):
        path = os.path.join(DIST, name)
        self.assertTrue(os.path.exists(path), "{} was not built".format(path))
        return path

    def pyz(self, side, arch=HOST_ARCH):
        return self.artifact("kubeedge-{}-{}-{}.pyz".format(side, VERSION, arch))

    def deb(self, side, arch):
        return self.artifact("kubeedge-tw-{}_{}-1_{}.deb".format(side, VERSION, arch))


class PyzTests(DistTestCase):
    """The .pyz files of this machine's architecture, run natively."""

    def setUp(self):
        super().setUp()
        if not os.path.exists(SYSTEM_PYTHON):
            raise self.skipTest("no " + SYSTEM_PYTHON)
        self.shiv_root = os.path.abspath(self.mktemp())

    def python(self, *args, env=None):
        environ = {"PATH": "/usr/bin:/bin", "HOME": self.shiv_root, "SHIV_ROOT": self.shiv_root}
        environ.update(env or {})
        return run([SYSTEM_PYTHON] + list(args), env=environ)

    def test_version_isolated_and_plain(self):
        """'python3 -I -S X.pyz version' and plain 'python3 X.pyz version' (which re-execs
        itself isolated) print this version and architecture, for both sides."""
        for side in ("edge", "cloud"):
            for flags in (["-I", "-S"], []):
                result = self.python(*(flags + [self.pyz(side), "version"]))
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertTrue(result.stdout.startswith("kubeedge-tw {} ".format(VERSION)),
                                result.stdout)
                self.assertIn("CPython, {})".format(HOST_ARCH), result.stdout)

    def test_side_help_and_refusal(self):
        """The edge .pyz runs 'edge --help' and refuses 'cloud' with exit 2, and the other
        way round."""
        for side, other in (("edge", "cloud"), ("cloud", "edge")):
            result = self.python("-I", "-S", self.pyz(side), side, "--help")
            self.assertEqual(result.returncode, 0, result.stderr)
            result = self.python("-I", "-S", self.pyz(side), other, "--help")
            self.assertEqual(result.returncode, 2)
            self.assertIn("run the {} side with kubeedge-{}-".format(other, other),
                          result.stderr)

    def test_shiv_root_is_where_it_unpacks(self):
        """SHIV_ROOT decides where the .pyz unpacks itself."""
        result = self.python("-I", "-S", self.pyz("edge"), "version")
        self.assertEqual(result.returncode, 0, result.stderr)
        unpacked = glob.glob(os.path.join(self.shiv_root, "kubeedge-edge-*.pyz_*",
                                          "site-packages", "kubeedge_tw", "__main__.py"))
        self.assertEqual(len(unpacked), 1)

    def test_contents(self):
        """Our package and its dependencies are in, our tests and dependencies' test suites
        are not; the entry point is kubeedge_tw.__main__:main_console with the preamble."""
        for arch in (HOST_ARCH, "aarch64"):
            with zipfile.ZipFile(self.pyz("edge", arch)) as z:
                names = z.namelist()
                env = json.loads(z.read("environment.json"))
            self.assertEqual(env["entry_point"], "kubeedge_tw.__main__:main_console")
            self.assertEqual(env["preamble"], "kubeedge_tw_preamble.py")
            self.assertIn("site-packages/kubeedge_tw/__main__.py", names)
            self.assertIn("site-packages/twisted/internet/reactor.py", names)
            self.assertIn("site-packages/bin/kubeedge_tw_preamble.py", names)
            self.assertFalse([n for n in names if n.startswith("site-packages/tests/")])
            self.assertFalse([n for n in names if "/test/" in n or "/tests/" in n])
            self.assertFalse([n for n in names if n.endswith(".pyc")])
            with open(self.pyz("edge", arch), "rb") as f:
                self.assertEqual(f.readline(), b"#!/usr/bin/env -S python3.11 -I -S\n")

    def test_manifest(self):
        """Each architecture's manifest names the minimum glibc, <= the 2.28 target, and
        every compiled wheel has a manylinux tag for that architecture."""
        for arch in (HOST_ARCH, "aarch64"):
            with open(self.artifact("kubeedge-tw-{}-{}.manifest".format(VERSION, arch))) as f:
                text = f.read()
            glibc = re.search(r"^glibc-min (\d+)\.(\d+) ", text, re.M)
            self.assertIsNotNone(glibc, text)
            self.assertLessEqual((int(glibc.group(1)), int(glibc.group(2))), (2, 28))
            compiled = [line for line in text.splitlines()
                        if re.match(r"\s+\S+\s+\S+\s+(cp311|abi3)\s", line)]
            self.assertTrue(compiled)
            for line in compiled:
                self.assertIn("manylinux", line)
                self.assertIn(arch, line)


class DebTests(DistTestCase):
    """The .debs: metadata, contents, and the amd64 one's .pyz run after dpkg -x."""

    def test_fields(self):
        """Architecture, the Python/glibc dependency from the manifest, conffiles."""
        for arch in ("amd64", "arm64"):
            for side in ("edge", "cloud"):
                deb = self.deb(side, arch)
                fields = run(["dpkg-deb", "-f", deb, "Architecture", "Depends"]).stdout
                self.assertIn("Architecture: " + arch, fields)
                self.assertIn("python3 (>= 3.11~), python3 (<< 3.12), libc6 (>= 2.28)", fields)
                control = os.path.abspath(self.mktemp())
                self.assertEqual(run(["dpkg-deb", "-e", deb, control]).returncode, 0)
                with open(os.path.join(control, "conffiles")) as f:
                    self.assertEqual(f.read().split(),
                                     ["/etc/kubeedge/{}core.yaml.sample".format(side)])

    def test_files(self):
        """The .pyz, the wrapper, the unit, the sample config, the man page."""
        for side in ("edge", "cloud"):
            listing = run(["dpkg-deb", "-c", self.deb(side, "amd64")]).stdout
            for path in ("./usr/lib/kubeedge-tw/kubeedge-{}.pyz",
                         "./usr/bin/kubeedge-tw-{}",
                         "./lib/systemd/system/kubeedge-tw-{}.service",
                         "./etc/kubeedge/{}core.yaml.sample",
                         "./usr/share/man/man1/kubeedge-tw-{}.1.gz",
                         "./usr/share/doc/kubeedge-tw-{}/pyz.manifest"):
                self.assertIn(path.format(side), listing)

    def test_extracted_pyz_runs(self):
        """dpkg -x the amd64 .debs and run their .pyz files' version."""
        if HOST_ARCH != "x86_64":
            raise self.skipTest("the amd64 .pyz runs natively on x86_64 only")
        root = os.path.abspath(self.mktemp())
        for side in ("edge", "cloud"):
            self.assertEqual(run(["dpkg-deb", "-x", self.deb(side, "amd64"), root]).returncode, 0)
            result = run([SYSTEM_PYTHON, "-I", "-S",
                          os.path.join(root, "usr/lib/kubeedge-tw/kubeedge-{}.pyz".format(side)),
                          "version"], env={"PATH": "/usr/bin:/bin", "SHIV_ROOT": root + "/shiv"})
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("kubeedge-tw {} ".format(VERSION), result.stdout)


class Arm64InstallTests(DistTestCase):
    """dpkg -i of the arm64 .debs inside the emulated arm64 Debian, on a throwaway overlay."""

    timeout = 600

    def setUp(self):
        super().setUp()
        if os.getuid() != 0:
            raise self.skipTest("installing into the arm64 rootfs needs root")
        if not ROOTFS or not os.path.exists(os.path.join(ROOTFS, "usr", "bin", "python3")):
            raise self.skipTest("KUBEEDGE_TW_ARM64_ROOTFS is not an arm64 rootfs "
                                "(tests/arm/rootfs.sh makes one)")
        self.overlay = os.path.abspath(self.mktemp())
        self.addCleanup(shutil.rmtree, self.overlay, True)

    def inside(self, *argv):
        return run([os.path.join(TOP, "tests", "arm", "in_rootfs.sh"), "--overlay",
                    self.overlay, ROOTFS] + list(argv),
                   env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                        "LANG": "C.UTF-8"})

    def test_install_run_purge(self):
        """dpkg -i installs both packages (postinst unpacks each .pyz, starts nothing: no
        config, no systemd), the commands print the arm64 version, and purge removes the
        unpacked cache."""
        upper_tmp = os.path.join(self.overlay, "upper", "tmp")
        os.makedirs(upper_tmp)
        debs = []
        for side in ("edge", "cloud"):
            shutil.copy(self.deb(side, "arm64"), upper_tmp)
            debs.append("/tmp/" + os.path.basename(self.deb(side, "arm64")))
        result = self.inside("dpkg", "-i", *debs)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertNotIn("warning", result.stderr)
        merged_cache = os.path.join(self.overlay, "upper", "var", "cache", "kubeedge-tw")
        self.assertEqual(len(glob.glob(os.path.join(merged_cache, "kubeedge-edge.pyz_*"))), 1)
        self.assertEqual(len(glob.glob(os.path.join(merged_cache, "kubeedge-cloud.pyz_*"))), 1)
        for side in ("edge", "cloud"):
            result = self.inside("kubeedge-tw-" + side, "version")
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("kubeedge-tw {} ".format(VERSION), result.stdout)
            self.assertIn("CPython, aarch64)", result.stdout)
        status = self.inside("dpkg-query", "-W", "-f", "${Package} ${Status}\n",
                             "kubeedge-tw-edge", "kubeedge-tw-cloud").stdout
        self.assertEqual(sorted(status.splitlines()),
                         ["kubeedge-tw-cloud install ok installed",
                          "kubeedge-tw-edge install ok installed"])
        self.assertEqual(self.inside("test", "-L", "/etc/systemd/system/multi-user.target.wants/"
                                     "kubeedge-tw-edge.service").returncode, 0,
                         "the unit is enabled")
        result = self.inside("dpkg", "--purge", "kubeedge-tw-edge", "kubeedge-tw-cloud")
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertNotEqual(self.inside("test", "-e", "/var/cache/kubeedge-tw").returncode, 0)
        self.assertNotEqual(self.inside("test", "-e", "/etc/kubeedge/edgecore.yaml.sample")
                            .returncode, 0)
