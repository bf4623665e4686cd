"""``python -m agentcom.sidecar``: the ``agentcom sidecar`` command on its own."""

import sys

from agentcom.sidecar.cli import run_standalone

sys.exit(run_standalone())
