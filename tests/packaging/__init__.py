"""Tests of the distribution files: scripts/build_pyz.sh's helpers (scripts/pyz_wheels.py,
scripts/pyz_preamble.py) and debian/.

``test_*`` modules run with the rest of the suite and need nothing built. The module
``artifacts`` checks the built .pyz files and .debs (and installs the arm64 .debs into the
emulated arm64 rootfs); it is deliberately not named ``test_*``, so ``trial tests`` does not
collect it: scripts/test.sh runs ``trial tests.packaging.artifacts`` in its distribution
block, right after building what it checks, with ``KUBEEDGE_TW_DIST_DIR`` set.
"""

import importlib.util
import os

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def load_script(name):
    """Import ``scripts/<name>.py`` (scripts/ is not a package) as a fresh module."""
    path = os.path.join(TOP, "scripts", name + ".py")
    spec = importlib.util.spec_from_file_location("kubeedge_tw_scripts_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
