"""The sidecar: connects to a hub, runs assigned tasks through the executors, reports back.

``Sidecar`` (``runtime``) is the long-running client; ``ProgressEmitter`` (``emitter``)
batches streamed output into EVENTs; ``Journal`` (``journal``) keeps tasks in hand across
crashes; ``cli`` is the ``agentcom sidecar`` command.
"""

from agentcom.sidecar.emitter import ProgressEmitter
from agentcom.sidecar.journal import Journal, JournalError
from agentcom.sidecar.runtime import Backoff, Sidecar, SidecarRefused, sidecar_url

__all__ = ["Backoff", "Journal", "JournalError", "ProgressEmitter", "Sidecar", "SidecarRefused", "sidecar_url"]
