"""In-process publish/subscribe with topics ``tasks``, ``agents`` and ``execution``.

Subscribers are plain callables run synchronously on the hub's loop; each must be cheap
(a dashboard only appends to its own bounded buffer). A subscriber that raises is
logged and dropped so one bad listener never breaks the hub.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

log = logging.getLogger(__name__)

TOPICS = ("tasks", "agents", "execution")
Listener = Callable[[str, dict[str, Any]], None]


class PubSub:
    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {t: [] for t in TOPICS}

    def subscribe(self, listener: Listener, topics: tuple[str, ...] = TOPICS) -> Callable[[], None]:
        for topic in topics:
            if topic not in self._listeners:
                raise ValueError(f"unknown topic {topic!r}; expected one of {', '.join(TOPICS)}")
            self._listeners[topic].append(listener)

        def unsubscribe() -> None:
            for topic in topics:
                if listener in self._listeners[topic]:
                    self._listeners[topic].remove(listener)

        return unsubscribe

    def has_listeners(self, topic: str) -> bool:
        return bool(self._listeners[topic])

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        for listener in tuple(self._listeners[topic]):
            try:
                listener(topic, message)
            except Exception:  # noqa: BLE001 - isolate listeners from the hub
                log.exception("pubsub listener failed on %s; removing it", topic)
                self._listeners[topic].remove(listener)
