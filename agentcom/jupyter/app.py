"""``AgentComExtension``: the hub running inside the Jupyter server, every URL under its base_url.

Installing the package enables it (``etc/jupyter/jupyter_server_config.d/agentcom.json``).
Settings are the ``AgentCom`` traitlets (``c.AgentCom.db_path = ...`` in any Jupyter config
file, or ``--AgentCom.db_path=...`` on the command line); ``python -m agentcom.jupyter
--help-all`` lists them. The HTTP API, dashboards and metrics use Jupyter's auth; sidecars
connect to ``{base_url}agentcom/ws/sidecar`` with sidecar tokens.

Lifecycle, as jupyter_server documents it: the service (store, core) is built in
``initialize_settings``, the routes in ``initialize_handlers``, the timers start in
``_start_jupyter_server_extension`` once the loop runs, and ``stop_extension`` closes the
dashboards and sidecars and then the store.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.extension.application import ExtensionApp

from agentcom import __version__
from agentcom.config import AgentCom


class AgentComExtension(ExtensionApp):
    name = "agentcom"
    description = "AgentCom hub inside the Jupyter server: task queue, sidecars, dashboards, metrics."
    version = __version__
    extension_url = "/agentcom/"
    load_other_extensions = True
    classes = [AgentCom]

    hub: Any = None

    def initialize_settings(self) -> None:
        from agentcom.hub.service import HubService

        settings = AgentCom(config=self.config, parent=self)
        self.hub = HubService(settings)
        self.settings.update({"agentcom_hub": self.hub})
        self.log.info("AgentCom hub: store %s; sidecars connect to %sagentcom/ws/sidecar",
                      settings.db_path, self.serverapp.base_url if self.serverapp else "/")

    def initialize_handlers(self) -> None:
        from agentcom.hub import redact
        from agentcom.hub.routes import route_table
        from agentcom.jupyter.handlers import JupyterAuth, jupyter_routes

        redact.install()  # Jupyter scrubs its access log; Tornado's warnings for refused requests too

        # ExtensionApp puts the server's base_url in front of every pattern.
        rules = route_table(self.hub, "/", auth_base=JupyterAuth, extra=jupyter_routes(self.hub))
        self.handlers.extend(tuple(rule) for rule in rules)  # type: ignore[arg-type]

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        self.hub.start_timers()

    async def stop_extension(self) -> None:
        hub, self.hub = self.hub, None
        if hub is None:
            return
        fanout = getattr(hub, "dashboard_fanout", None)
        if fanout is not None:
            fanout.close_all(1001, "Jupyter server shutting down")
        metrics = getattr(hub, "metrics", None)
        if metrics is not None:
            metrics.close()
        await hub.close()


main = launch_new_instance = AgentComExtension.launch_instance
