"""Keep tokens out of Tornado's log lines.

Dashboards and ``agentcom demo`` put the admin token in URLs (``?token=``; browsers cannot
set headers on a WebSocket), and Tornado writes the request URI into its access log and into
the warning it logs for every refused request. ``install`` adds a filter to Tornado's loggers
that replaces the value of any ``token`` query argument (however its name is percent-encoded,
since Tornado decodes names) with ``[secret]``. Jupyter scrubs its own access log; the
filter covers Tornado's other lines there too.
"""

from __future__ import annotations

import logging
import re
import urllib.parse

SECRET_ARGUMENTS = frozenset({"token"})
TORNADO_LOGGERS = ("tornado.access", "tornado.application", "tornado.general")
_QUERY_PAIR = re.compile(r"([?&;])([^=&;\s#'\"]+)=([^&;\s#'\"]*)")


def scrub_tokens(text: str) -> str:
    """``text`` with the value of every secret query argument replaced by ``[secret]``."""

    def hide(match: re.Match[str]) -> str:
        if urllib.parse.unquote_plus(match.group(2)).strip().lower() in SECRET_ARGUMENTS:
            return f"{match.group(1)}{match.group(2)}=[secret]"
        return match.group(0)

    return _QUERY_PAIR.sub(hide, text) if "=" in text else text


class TokenFilter(logging.Filter):
    """Rewrites a record's message with its arguments merged in and tokens scrubbed; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = scrub_tokens(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


_FILTER = TokenFilter()


def install() -> None:
    """Add the filter to Tornado's loggers (once; safe to call for every app made)."""
    for name in TORNADO_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
