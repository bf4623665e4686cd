"""The hub inside a Jupyter server (``jupyter lab`` / ``jupyter server``), as a server extension."""
