"""The edge's startup imports leave out what only some uses of a feature need (the
footprint that bench/edge_footprint.py measures)."""

import json
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import kubeedge_tw

#: Imports every edge module the way the edge tap does when all are enabled, then reports
#: which of the watched packages got loaded.
PROBE = """
import json, sys
import kubeedge_tw.edge.tap
import kubeedge_tw.edge.metamanager, kubeedge_tw.edge.edged
import kubeedge_tw.edge.devicetwin, kubeedge_tw.edge.eventbus
import kubeedge_tw.certs.rotation
print(json.dumps(sorted(n for n in ("treq", "docker", "requests", "kubeedge_tw.certs.join",
                                    "kubeedge_tw.cloud") if n in sys.modules)))
"""


class StartupImportsTests(SynchronousTestCase):
    """Loading every edge module imports neither treq (certificate renewal) nor the docker
    SDK (first engine call, on the docker pool) nor cloud code."""

    def test_lazy_packages_not_imported(self):
        """A fresh interpreter that imports all edge modules has none of them loaded."""
        top = os.path.dirname(os.path.dirname(os.path.abspath(kubeedge_tw.__file__)))
        env = dict(os.environ, PYTHONPATH=top)
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                             env=env, timeout=120, check=True).stdout
        self.assertEqual(json.loads(out.strip().splitlines()[-1]), [])
