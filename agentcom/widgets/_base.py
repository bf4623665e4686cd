"""What every AgentCom widget shares: finding its feed, throttled rendering, a text fallback."""

from __future__ import annotations

from typing import Any

from agentcom.client._feed import Feed
from agentcom.widgets._throttle import RenderThrottle

DEFAULT_INTERVAL = 0.1  # seconds between renders: at most ~10 per second


def feed_of(source: Any) -> Feed:
    """A Feed from a Feed, a HubClient (its live feed) or None (a private, detached Feed)."""
    if source is None:
        return Feed()
    if isinstance(source, Feed):
        return source
    feed = getattr(source, "feed", None)
    if isinstance(feed, Feed):
        return feed
    raise TypeError(f"expected a HubClient, a Feed or None, got {type(source).__name__}")


class LiveView:
    """Mixin for widgets drawing a feed: subclasses implement ``_render`` and ``text_summary``.

    ``_on_feed`` filters feed changes cheaply and asks the throttle for a render; the
    throttle calls ``_render`` at most once per ``interval`` on the running loop.
    ``_repr_mimebundle_`` adds ``text/html`` (a static copy of the view) and a readable
    ``text/plain`` next to the widget view, for frontends that cannot render widgets.
    """

    feed: Feed
    _throttle: RenderThrottle
    _remove_listener: Any = None

    def _attach(self, feed: Feed, interval: float) -> None:
        self.feed = feed
        self._throttle = RenderThrottle(self._render, interval)
        self._remove_listener = feed.add_listener(self._on_feed)

    def _on_feed(self, kind: str, data: Any) -> None:  # pragma: no cover - overridden
        self._throttle.request()

    def _render(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def renders(self) -> int:
        """How many times the view was redrawn."""
        return self._throttle.renders

    def refresh(self) -> None:
        """Redraw now (tests, a final frame before a screenshot)."""
        self._throttle.dirty = True
        self._throttle.flush()

    def text_summary(self) -> str:  # pragma: no cover - overridden
        return type(self).__name__

    def static_html(self) -> str:  # pragma: no cover - overridden
        return ""

    def detach(self) -> None:
        """Stop following the feed (the widget keeps its last view)."""
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        throttle = getattr(self, "_throttle", None)
        if throttle is not None:
            throttle.close()

    def close(self) -> None:
        self.detach()
        super().close()  # type: ignore[misc]

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        self._throttle.flush()
        data = super()._repr_mimebundle_(**kwargs) or {}  # type: ignore[misc]
        data["text/plain"] = self.text_summary()
        data["text/html"] = self.static_html()
        return data
