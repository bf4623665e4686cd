import sys

from agentcom.cli import main

sys.exit(main())
