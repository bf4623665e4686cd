"""The wire protocol: frame Structs (``messages``) and their codec (``codec``)."""

from agentcom.protocol import codec, messages
from agentcom.protocol.messages import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION", "codec", "messages"]
