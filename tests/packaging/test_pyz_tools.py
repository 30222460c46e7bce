"""scripts/pyz_wheels.py (wheel tags, minimum glibc) and scripts/pyz_preamble.py (isolation
re-exec, Python/architecture check, side check) without building a .pyz."""

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import venv
import zipfile

from twisted.trial.unittest import SynchronousTestCase

from tests.packaging import TOP, load_script

wheels = load_script("pyz_wheels")
preamble = load_script("pyz_preamble")

CRYPTO = "cryptography-50.0.2-cp311-abi3-manylinux_2_28_aarch64.whl"
ZOPE = "zope_interface-8.7-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.whl"
YAML = ("pyyaml-6.0.4-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64."
        "manylinux_2_28_aarch64.whl")
PURE = "twisted-26.10.0-py3-none-any.whl"


class PlatformTests(SynchronousTestCase):
    """The --platform list pip needs, since it does not expand manylinux_2_X itself."""

    def test_aarch64_down_to_2_17(self):
        """aarch64 at glibc 2.28: every manylinux_2_Y from 28 down to 17, then manylinux2014."""
        self.assertEqual(
            wheels.platforms("aarch64", (2, 28)),
            ["manylinux_2_{}_aarch64".format(y) for y in range(28, 16, -1)]
            + ["manylinux2014_aarch64"])

    def test_x86_64_has_legacy_aliases(self):
        """x86_64 goes down to manylinux_2_5 and includes manylinux2014/2010/1."""
        tags = wheels.platforms("x86_64", (2, 28))
        self.assertEqual(tags[0], "manylinux_2_28_x86_64")
        self.assertIn("manylinux_2_5_x86_64", tags)
        self.assertEqual(tags[-3:], ["manylinux2014_x86_64", "manylinux2010_x86_64",
                                     "manylinux1_x86_64"])

    def test_old_target_excludes_newer_aliases(self):
        """A glibc 2.12 target does not accept manylinux2014 (glibc 2.17) wheels."""
        tags = wheels.platforms("x86_64", (2, 12))
        self.assertNotIn("manylinux2014_x86_64", tags)
        self.assertIn("manylinux2010_x86_64", tags)


class GlibcTests(SynchronousTestCase):
    """The oldest glibc a set of wheels runs on."""

    def test_wheel_runs_on_its_oldest_tag(self):
        """A wheel tagged for several manylinux versions needs only the oldest."""
        self.assertEqual(wheels.wheel_glibc(YAML), (2, 17))
        self.assertEqual(wheels.wheel_glibc(CRYPTO), (2, 28))
        self.assertIsNone(wheels.wheel_glibc(PURE))
        self.assertEqual(wheels.wheel_glibc("x-1-cp311-cp311-linux_x86_64.whl"), "unknown")

    def test_report_names_the_newest_requirement(self):
        """The set needs the largest per-wheel minimum, and the report names who needs it."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            worst = wheels.report([PURE, ZOPE, CRYPTO, YAML])
        self.assertEqual(worst, (2, 28))
        lines = out.getvalue().splitlines()
        self.assertEqual(lines[-1], "glibc-min 2.28 cryptography")
        self.assertEqual(len(lines), 5)

    def test_binary_lists_compiled_wheels_only(self):
        """Wheels with an ABI tag other than none are the compiled ones."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            wheels.binary([PURE, CRYPTO, ZOPE])
        self.assertEqual(out.getvalue().split(), ["cryptography", "zope_interface"])

    def test_required_by_reads_metadata(self):
        """requiredby finds Requires-Dist lines by normalized name and ignores extras."""
        base = self.mktemp()
        os.makedirs(base)

        def wheel(name, requires):
            path = os.path.join(base, "{}-1.0-py3-none-any.whl".format(name))
            with zipfile.ZipFile(path, "w") as z:
                z.writestr("{}-1.0.dist-info/METADATA".format(name),
                           "Name: {}\n".format(name)
                           + "".join("Requires-Dist: {}\n".format(r) for r in requires))
            return path

        paths = [wheel("twisted", ["zope.interface>=5", "attrs"]),
                 wheel("autobahn", ["cffi>=1.14", "zope-interface; extra == 'x'"]),
                 wheel("treq", ["Zope_Interface"])]
        self.assertEqual(wheels.required_by("zope_interface", paths), ["treq", "twisted"])


class FakeFlags:
    """sys.flags stand-in."""

    def __init__(self, no_site):
        self.no_site = no_site


class Exec:
    """Records an execv call instead of replacing the test process."""

    def __init__(self, error=None):
        self.calls = []
        self.error = error

    def __call__(self, path, argv):
        self.calls.append((path, argv))
        if self.error:
            raise self.error


class ReexecTests(SynchronousTestCase):
    """The preamble re-runs the .pyz with -I -S unless site is already off."""

    def test_reexec_when_site_is_on(self):
        """python3 X.pyz ARGS becomes python3 -I -S /abs/X.pyz ARGS, marked in the env."""
        execv, environ = Exec(), {}
        preamble.reexec_isolated("rel/x.pyz", argv=["rel/x.pyz", "edge", "--config", "c"],
                                 flags=FakeFlags(0), environ=environ,
                                 executable="/usr/bin/python3", execv=execv,
                                 stderr=io.StringIO())
        self.assertEqual(execv.calls, [("/usr/bin/python3", [
            "/usr/bin/python3", "-I", "-S", os.path.abspath("rel/x.pyz"), "edge", "--config",
            "c"])])
        self.assertEqual(environ, {preamble.REEXEC_MARK: "1"})

    def test_no_reexec_when_site_is_off(self):
        """With -S nothing is exec'd and the marker is not passed on to children."""
        execv, environ = Exec(), {preamble.REEXEC_MARK: "1"}
        preamble.reexec_isolated("x.pyz", argv=["x.pyz"], flags=FakeFlags(1),
                                 environ=environ, executable="/usr/bin/python3", execv=execv)
        self.assertEqual(execv.calls, [])
        self.assertEqual(environ, {})

    def test_marker_prevents_a_loop(self):
        """If the re-run still has site on, it warns and goes on instead of exec'ing again."""
        execv, err = Exec(), io.StringIO()
        preamble.reexec_isolated("x.pyz", argv=["x.pyz"], flags=FakeFlags(0),
                                 environ={preamble.REEXEC_MARK: "1"},
                                 executable="/usr/bin/python3", execv=execv, stderr=err)
        self.assertEqual(execv.calls, [])
        self.assertIn("site is still on", err.getvalue())

    def test_exec_failure_goes_on_in_process(self):
        """When exec fails (qemu-user without binfmt) it warns and continues."""
        execv, environ, err = Exec(OSError(8, "Exec format error")), {}, io.StringIO()
        preamble.reexec_isolated("x.pyz", argv=["x.pyz"], flags=FakeFlags(0),
                                 environ=environ, executable="/usr/bin/python3",
                                 execv=execv, stderr=err)
        self.assertEqual(len(execv.calls), 1)
        self.assertEqual(environ, {})
        self.assertIn("Exec format error", err.getvalue())
        self.assertIn("python3 -I -S", err.getvalue())


class FitAndSideTests(SynchronousTestCase):
    """Wrong interpreter, wrong machine or wrong side: exit 2 with a plain message."""

    BUILD = {"python": "3.11", "arch": "aarch64", "side": "edge", "version": "0.1.0"}

    def fit(self, **kwargs):
        args = dict(build=self.BUILD, version_info=(3, 11, 2), implementation="CPython",
                    machine="aarch64", stderr=io.StringIO())
        args.update(kwargs)
        preamble.check_fit("/opt/kubeedge-edge-0.1.0-aarch64.pyz", **args)
        return args["stderr"].getvalue()

    def test_matching_interpreter_passes(self):
        """CPython 3.11 on aarch64 (or arm64, as some kernels say) is accepted."""
        self.assertEqual(self.fit(), "")
        self.assertEqual(self.fit(machine="arm64"), "")

    def test_other_python_version(self):
        """Python 3.12 is refused, naming cp311 and the rebuild flag."""
        err = io.StringIO()
        e = self.assertRaises(SystemExit, self.fit, version_info=(3, 12, 1), stderr=err)
        self.assertEqual(e.code, 2)
        self.assertIn("cp311", err.getvalue())
        self.assertIn("--python 3.12", err.getvalue())
        self.assertTrue(err.getvalue().startswith("kubeedge-edge-0.1.0-aarch64.pyz: "))

    def test_other_machine(self):
        """An aarch64 .pyz on x86_64 is refused."""
        err = io.StringIO()
        e = self.assertRaises(SystemExit, self.fit, machine="x86_64", stderr=err)
        self.assertEqual(e.code, 2)
        self.assertIn("built for aarch64 but this machine is x86_64", err.getvalue())

    def test_other_implementation(self):
        """PyPy cannot load cp311 extension modules."""
        e = self.assertRaises(SystemExit, self.fit, implementation="PyPy")
        self.assertEqual(e.code, 2)

    def test_side(self):
        """The edge .pyz refuses 'cloud' (naming the cloud .pyz) and allows the rest."""
        err = io.StringIO()
        e = self.assertRaises(SystemExit, preamble.check_side, "x.pyz",
                              argv=["x.pyz", "cloud"], build=self.BUILD, stderr=err)
        self.assertEqual(e.code, 2)
        self.assertIn("kubeedge-cloud-0.1.0-aarch64.pyz", err.getvalue())
        for command in ("edge", "join", "certs", "gettoken", "version"):
            preamble.check_side("x.pyz", argv=["x.pyz", command], build=self.BUILD)
        preamble.check_side("x.pyz", argv=["x.pyz"], build=self.BUILD)

    def test_build_script_fills_in_exactly_one_line(self):
        """scripts/build_pyz.sh replaces the line matching '^BUILD = '; there is one."""
        with open(os.path.join(TOP, "scripts", "pyz_preamble.py")) as f:
            text = f.read()
        self.assertEqual(len(re.findall(r"^BUILD = .*$", text, re.M)), 1)
        with open(os.path.join(TOP, "scripts", "build_pyz.sh")) as f:
            self.assertIn("s/^BUILD = .*/BUILD = ", f.read())


MAIN = """\
import json, os, sys
import kubeedge_tw_preamble
kubeedge_tw_preamble.main(sys.argv[0])
print(json.dumps({"no_site": sys.flags.no_site, "isolated": sys.flags.isolated,
                  "argv": sys.argv[1:], "zope": "zope" in sys.modules,
                  "mark": os.environ.get("KUBEEDGE_TW_PYZ_REEXEC")}))
"""

#: What Debian's python3-zope.interface does at site time, reduced: a module object
#: named zope in sys.modules, with its __path__ fixed to the distro's directory.
HIJACK_PTH = ("import sys, types; m = sys.modules.setdefault('zope', types.ModuleType('zope'));"
              " m.__path__ = ['/usr/lib/python3/dist-packages/zope']\n")


class IsolationProcessTests(SynchronousTestCase):
    """The preamble in a real zipapp, run by a real interpreter."""

    def zipapp(self):
        path = os.path.abspath(self.mktemp()) + ".pyz"
        with zipfile.ZipFile(path, "w") as z:
            z.write(os.path.join(TOP, "scripts", "pyz_preamble.py"), "kubeedge_tw_preamble.py")
            z.writestr("__main__.py", MAIN)
        return path

    def run_zipapp(self, python, path, *args):
        env = {k: v for k, v in os.environ.items() if k != "KUBEEDGE_TW_PYZ_REEXEC"}
        out = subprocess.run([python, path] + list(args), capture_output=True, text=True,
                             env=env, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def test_reexec_end_to_end(self):
        """'python X.pyz ARGS' ends up running with -I -S and the same ARGS."""
        result = self.run_zipapp(sys.executable, self.zipapp(), "edge", "--config", "a b")
        self.assertEqual(result, {"no_site": 1, "isolated": 1, "argv": ["edge", "--config", "a b"],
                                  "zope": False, "mark": None})

    def test_pth_hijack_is_escaped(self):
        """A site-packages .pth that plants a 'zope' module (Debian's python3-zope.interface
        does) is active without -S, and gone once the preamble re-ran the zipapp."""
        env_dir = os.path.abspath(self.mktemp())
        venv.EnvBuilder(with_pip=False).create(env_dir)
        python = os.path.join(env_dir, "bin", "python")
        site_dir = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True).stdout.strip()
        with open(os.path.join(site_dir, "zope-hijack-nspkg.pth"), "w") as f:
            f.write(HIJACK_PTH)
        planted = subprocess.run(
            [python, "-c", "import sys; print(sys.modules['zope'].__path__)"],
            capture_output=True, text=True)
        self.assertIn("/usr/lib/python3/dist-packages/zope", planted.stdout)
        result = self.run_zipapp(python, self.zipapp(), "version")
        self.assertEqual(result["zope"], False)
        self.assertEqual(result["no_site"], 1)
