"""``python -m agentcom.jupyter [--help-all]``: a Jupyter server with the hub (and its settings help)."""

from agentcom.jupyter.app import main

if __name__ == "__main__":
    main()  # type: ignore[no-untyped-call]
