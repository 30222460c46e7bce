"""Preamble of the kubeedge-tw .pyz files (shiv runs it after unpacking, before the entry
point ``kubeedge_tw.__main__:main_console``). ``scripts/build_pyz.sh`` copies it into each
.pyz with the ``BUILD`` line below filled in.

1. **Isolation.** Unless Python already runs without ``site`` (``-S``), re-execute the same
   interpreter as ``python3 -I -S <this .pyz> ARGS``. Reason: Debian's
   ``python3-zope.interface`` installs ``zope.interface-*-nspkg.pth`` in dist-packages; when
   ``site`` processes it at start-up it puts a ``zope`` module whose ``__path__`` is fixed to
   ``/usr/lib/python3/dist-packages/zope`` into ``sys.modules``. Everything later imports
   Debian's old ``zope.interface`` instead of the one bundled here, and Twisted 26 fails
   inside the zipapp. ``-I`` alone does not help (it only drops the *user* site dir and
   ``PYTHON*`` variables); ``-S`` keeps every ``.pth`` of the system out, and shiv adds the
   bundled site-packages itself. The shebang already says ``python3 -I -S``, so only
   ``python3 X.pyz ...`` pays for the re-exec (one more interpreter start).
2. **Fit.** The bundled wheels are compiled for one CPython minor version and one CPU
   architecture; anything else would fail later with an obscure ImportError, so say it
   plainly here (exit 2).
3. **Side.** The edge .pyz does not run the cloud and vice versa (exit 2, naming the other
   file); ``join``, ``certs``, ``gettoken`` and ``version`` work in both.

shiv hands this file the globals ``archive`` (the .pyz path), ``env`` and ``site_packages``.
"""

import os
import platform
import sys

# Filled in by scripts/build_pyz.sh; None disables the corresponding check.
BUILD = {"python": None, "arch": None, "side": None, "version": None}

#: ``platform.machine()`` values that can run wheels built for each architecture (a 32-bit
#: ARM userland on a 64-bit kernel reports armv8l).
ARCH_NAMES = {
    "x86_64": ("x86_64", "amd64"),
    "aarch64": ("aarch64", "arm64"),
    "armv7l": ("armv7l", "armv8l"),
}

#: Set in the environment of the re-executed process, so a Python that ignores ``-S``
#: cannot make this loop.
REEXEC_MARK = "KUBEEDGE_TW_PYZ_REEXEC"


class PreambleExit(SystemExit):
    """Exit status 2 with a message already written to stderr."""


def _fail(archive, message, stderr):
    stderr.write("{}: {}\n".format(os.path.basename(archive), message))
    raise PreambleExit(2)


def reexec_isolated(archive, argv=None, flags=None, environ=None, executable=None,
                    execv=os.execv, stderr=None):
    """Replace this process by ``python -I -S <archive> ARGS`` unless site is off already.

    Returns only when no re-exec happens (site already off, or exec impossible).
    """
    argv = sys.argv if argv is None else argv
    flags = sys.flags if flags is None else flags
    environ = os.environ if environ is None else environ
    executable = sys.executable if executable is None else executable
    stderr = sys.stderr if stderr is None else stderr
    if flags.no_site:
        environ.pop(REEXEC_MARK, None)  # not inherited by anything this process starts
        return
    if environ.get(REEXEC_MARK):
        stderr.write("warning: re-run with -I -S but site is still on; going on\n")
        return
    if not executable:
        stderr.write("warning: cannot find this Python's executable to re-run it with "
                     "-I -S; distro .pth files may shadow bundled packages\n")
        return
    environ[REEXEC_MARK] = "1"
    try:
        execv(executable, [executable, "-I", "-S", os.path.abspath(archive)] + list(argv[1:]))
    except OSError as e:
        # e.g. qemu-user without binfmt_misc cannot exec a foreign binary: go on in-process.
        del environ[REEXEC_MARK]
        stderr.write("warning: could not re-run with 'python3 -I -S' ({}); run the .pyz "
                     "that way yourself if distro packages break imports\n".format(e))


def check_fit(archive, build=None, version_info=None, implementation=None, machine=None,
              stderr=None):
    """Exit 2 when this interpreter cannot load the bundled compiled wheels."""
    build = BUILD if build is None else build
    version_info = sys.version_info if version_info is None else version_info
    implementation = implementation or platform.python_implementation()
    machine = machine or platform.machine()
    stderr = sys.stderr if stderr is None else stderr
    want_python, want_arch = build["python"], build["arch"]
    have_python = "{}.{}".format(*version_info[:2])
    if implementation != "CPython":
        _fail(archive, "needs CPython {}, this is {}".format(want_python, implementation),
              stderr)
    if want_python and have_python != want_python:
        _fail(archive, "built for CPython {} (its compiled wheels are cp{}), this is Python "
              "{}; use python{} or rebuild with 'scripts/build_pyz.sh --python {}'".format(
                  want_python, want_python.replace(".", ""), have_python, want_python,
                  have_python), stderr)
    if want_arch and machine not in ARCH_NAMES.get(want_arch, (want_arch,)):
        _fail(archive, "built for {} but this machine is {}; use the matching "
              "kubeedge-*-{}-<arch>.pyz".format(want_arch, machine, build["version"] or "*"),
              stderr)


def check_side(archive, argv=None, build=None, stderr=None):
    """Exit 2 when asked to run the other side than the one this .pyz is for."""
    argv = sys.argv if argv is None else argv
    build = BUILD if build is None else build
    stderr = sys.stderr if stderr is None else stderr
    side = build["side"]
    if side is None or len(argv) < 2:
        return
    other = {"edge": "cloud", "cloud": "edge"}.get(side)
    if argv[1] == other:
        _fail(archive, "this is the {} .pyz; run the {} side with kubeedge-{}-{}-{}.pyz".format(
            side, other, other, build["version"] or "<version>", build["arch"] or "<arch>"),
            stderr)


def main(archive):
    """All three steps, in order."""
    reexec_isolated(archive)
    check_fit(archive)
    check_side(archive)


if __name__ == "__main__":
    # shiv runs this file with run_name "__main__" and the global ``archive``.
    main(globals().get("archive") or sys.argv[0])
