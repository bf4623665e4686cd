"""Dashboards: the socket session (``session``), its Tornado adapters (``handlers``) and the web page (``static/``)."""
