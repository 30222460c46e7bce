"""debian/: the units, control, rules and the postinst's rule that a service starts only once
its config exists; and the shell syntax of every packaging script. Nothing is built."""

import configparser
import os
import re
import shutil
import subprocess

from twisted.trial.unittest import SynchronousTestCase

import kubeedge_tw
from tests.packaging import TOP

DEBIAN = os.path.join(TOP, "debian")
SIDES = ("edge", "cloud")


def read(*parts):
    with open(os.path.join(TOP, *parts)) as f:
        return f.read()


class UnitTests(SynchronousTestCase):
    """The systemd units run the side in the foreground from the installed .pyz."""

    def unit(self, side):
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        parser.optionxform = str
        parser.read_string(read("debian", "kubeedge-tw-{}.service".format(side)))
        return parser

    def test_exec_start(self):
        """ExecStart: python3 -I -S, the .pyz rules installs, the side, /etc/kubeedge config
        and the /var/lib/kubeedge state dir."""
        for side in SIDES:
            service = self.unit(side)["Service"]
            self.assertEqual(
                service["ExecStart"],
                "/usr/bin/python3 -I -S /usr/lib/kubeedge-tw/kubeedge-{0}.pyz {0} "
                "--config /etc/kubeedge/{0}core.yaml --state-dir /var/lib/kubeedge".format(side))
            self.assertIn("$pkg/usr/lib/kubeedge-tw/kubeedge-$$side.pyz", read("debian", "rules"))

    def test_restart_state_and_condition(self):
        """Restart on failure, a StateDirectory, SHIV_ROOT in the CacheDirectory, and no start
        without the config file."""
        for side in SIDES:
            unit = self.unit(side)
            self.assertEqual(unit["Service"]["Type"], "simple")
            self.assertEqual(unit["Service"]["Restart"], "on-failure")
            self.assertEqual(unit["Service"]["StateDirectory"], "kubeedge")
            self.assertEqual(unit["Service"]["CacheDirectory"], "kubeedge-tw")
            self.assertEqual(unit["Service"]["Environment"], "SHIV_ROOT=/var/cache/kubeedge-tw")
            self.assertEqual(unit["Unit"]["ConditionPathExists"],
                             "/etc/kubeedge/{}core.yaml".format(side))
            self.assertEqual(unit["Install"]["WantedBy"], "multi-user.target")

    def test_wrappers_run_the_same_pyz_isolated(self):
        """/usr/bin/kubeedge-tw-<side> execs python3 -I -S on the packaged .pyz."""
        for side in SIDES:
            text = read("debian", "bin", "kubeedge-tw-" + side)
            self.assertIn('exec /usr/bin/python3 -I -S /usr/lib/kubeedge-tw/kubeedge-{}.pyz "$@"'
                          .format(side), text)


class ControlTests(SynchronousTestCase):
    """Package metadata."""

    def test_two_architecture_specific_packages(self):
        """kubeedge-tw-edge and kubeedge-tw-cloud, amd64 and arm64, with the Python/glibc
        dependency computed from the .pyz manifest."""
        paragraphs = [p for p in read("debian", "control").split("\n\n") if p.strip()]
        packages = {}
        for p in paragraphs[1:]:
            fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", p, re.M))
            packages[fields["Package"]] = fields
        self.assertEqual(sorted(packages), ["kubeedge-tw-cloud", "kubeedge-tw-edge"])
        for fields in packages.values():
            self.assertEqual(fields["Architecture"], "amd64 arm64")
            self.assertIn("${kubeedge:Depends}", fields["Depends"])
        self.assertIn("-Vkubeedge:Depends=python3 (>= $$py~), python3 (<< $$next), "
                      "libc6 (>= $$glibc)", read("debian", "rules"))

    def test_changelog_version_is_the_package_version(self):
        """debian/changelog's upstream version is kubeedge_tw.__version__ (rules checks it
        too, at build time)."""
        first = read("debian", "changelog").splitlines()[0]
        version = re.match(r"kubeedge-tw \(([^)]+)\)", first).group(1)
        self.assertEqual(version.rsplit("-", 1)[0], kubeedge_tw.__version__)

    def test_services_not_started_by_debhelper(self):
        """dh_installsystemd enables the units but leaves starting to our postinst."""
        self.assertIn("dh_installsystemd --no-start", read("debian", "rules"))


class PostinstTests(SynchronousTestCase):
    """The postinst, run by sh with its paths moved into a temporary directory and stub
    python3/deb-systemd-invoke on PATH."""

    def setUp(self):
        self.base = os.path.abspath(self.mktemp())
        self.bin = os.path.join(self.base, "bin")
        self.cache = os.path.join(self.base, "cache")
        self.etc = os.path.join(self.base, "etc")
        self.run_dir = os.path.join(self.base, "run-systemd")
        self.calls = os.path.join(self.base, "calls")
        for d in (self.bin, self.etc):
            os.makedirs(d)
        self.stub("python3", 'echo "python3 $*" >>"{calls}"\n'
                             '[ "$3" = -c ] && echo newbuild\nexit 0\n')
        self.stub("deb-systemd-invoke", 'echo "deb-systemd-invoke $*" >>"{calls}"\n')
        self.stub("deb-systemd-helper", 'exit 0\n')

    def stub(self, name, body):
        path = os.path.join(self.bin, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body.format(calls=self.calls))
        os.chmod(path, 0o755)

    def run_postinst(self, side, *args):
        text = read("debian", "kubeedge-tw-{}.postinst".format(side))
        replacements = {
            "cache=/var/cache/kubeedge-tw": "cache=" + self.cache,
            "config=/etc/kubeedge/{}core.yaml".format(side):
                "config={}/{}core.yaml".format(self.etc, side),
            "systemd_run=/run/systemd/system": "systemd_run=" + self.run_dir,
        }
        for old, new in replacements.items():
            self.assertIn("\n" + old + "\n", text)
            text = text.replace("\n" + old + "\n", "\n" + new + "\n")
        script = os.path.join(self.base, "postinst")
        with open(script, "w") as f:
            f.write(text)
        env = dict(os.environ, PATH=self.bin + os.pathsep + os.environ.get("PATH", ""))
        result = subprocess.run(["sh", script] + list(args), env=env, capture_output=True,
                                text=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        if not os.path.exists(self.calls):
            return []
        with open(self.calls) as f:
            return f.read().splitlines()

    def test_not_started_without_config(self):
        """Installed with systemd running but no config: unpacked, not started."""
        os.makedirs(self.run_dir)
        calls = self.run_postinst("edge", "configure", "")
        self.assertIn("python3 -I -S /usr/lib/kubeedge-tw/kubeedge-edge.pyz version", calls)
        self.assertFalse([c for c in calls if c.startswith("deb-systemd-invoke")])

    def test_started_once_configured(self):
        """With the config present, configure (re)starts the service."""
        os.makedirs(self.run_dir)
        open(os.path.join(self.etc, "cloudcore.yaml"), "w").close()
        calls = self.run_postinst("cloud", "configure", "0.1.0-1")
        self.assertIn("deb-systemd-invoke restart kubeedge-tw-cloud.service", calls)

    def test_no_start_without_systemd(self):
        """In a chroot or container without systemd nothing is started, config or not."""
        open(os.path.join(self.etc, "edgecore.yaml"), "w").close()
        calls = self.run_postinst("edge", "configure", "")
        self.assertFalse([c for c in calls if c.startswith("deb-systemd-invoke")])

    def test_older_unpacked_builds_removed(self):
        """Unpacked trees of other builds of this .pyz go; the current one and the other
        side's stay."""
        for name in ("kubeedge-edge.pyz_oldbuild", "kubeedge-edge.pyz_newbuild",
                     ".kubeedge-edge.pyz_oldbuild_lock", "kubeedge-cloud.pyz_oldbuild"):
            os.makedirs(os.path.join(self.cache, name))
        self.run_postinst("edge", "configure", "")
        self.assertEqual(sorted(os.listdir(self.cache)),
                         ["kubeedge-cloud.pyz_oldbuild", "kubeedge-edge.pyz_newbuild"])


class ShellSyntaxTests(SynchronousTestCase):
    """Every packaging shell script parses."""

    def test_syntax(self):
        """sh -n for maintainer scripts and wrappers, bash -n for the build/test scripts."""
        posix = [os.path.join("debian", n) for n in sorted(os.listdir(DEBIAN))
                 if n.endswith((".postinst", ".postrm"))]
        posix += [os.path.join("debian", "bin", "kubeedge-tw-" + s) for s in SIDES]
        bash = ["scripts/build_pyz.sh", "scripts/build_deb.sh", "scripts/test.sh",
                "tests/arm/rootfs.sh", "tests/arm/in_rootfs.sh", "tests/arm/run_pyz_arm64.sh"]
        self.assertEqual(len(posix), 6)
        for shell, files in (("sh", posix), ("bash", bash)):
            for name in files:
                result = subprocess.run([shutil.which(shell), "-n", os.path.join(TOP, name)],
                                        capture_output=True, text=True)
                self.assertEqual(result.returncode, 0, "{}: {}".format(name, result.stderr))
