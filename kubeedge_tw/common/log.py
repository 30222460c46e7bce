"""Log observers for twistd's ``--logger`` option: human text or JSON lines, on stderr.

``python -m kubeedge_tw cloud|edge`` passes ``--logger kubeedge_tw.common.log.text_observer``
by default and ``json_observer`` with ``--logger json``; plain ``twistd`` users pass the
same dotted names. Events carry ``log_event`` names (``core_started``,
``module_handler_failed`` ...) that stay stable for operators to grep for.
"""

import sys

from twisted.logger import (
    FilteringLogObserver, LogLevel, LogLevelFilterPredicate, formatEventAsClassicLogText,
    jsonFileLogObserver, textFileLogObserver,
)

__all__ = ["text_observer", "json_observer", "observer_for", "LOGGER_NAMES"]


def _filtered(observer, level=LogLevel.info):
    return FilteringLogObserver(observer, [LogLevelFilterPredicate(defaultLogLevel=level)])


def text_observer(stream=None):
    """Human-readable lines (``2026-11-25T10:00:00+0000 [ns#info] text``) on stderr."""
    return _filtered(textFileLogObserver(stream or sys.stderr))


def json_observer(stream=None):
    """One JSON object per event (record separator framed, as ``twisted.logger`` writes
    them, readable back with ``eventsFromJSONLogFile``) on stderr."""
    return _filtered(jsonFileLogObserver(stream or sys.stderr))


#: Short names accepted by ``python -m kubeedge_tw ... --logger NAME``.
LOGGER_NAMES = {
    "text": "kubeedge_tw.common.log.text_observer",
    "json": "kubeedge_tw.common.log.json_observer",
}


def observer_for(name):
    """The dotted factory name for a short logger name; ``ValueError`` if unknown."""
    try:
        return LOGGER_NAMES[name]
    except KeyError:
        raise ValueError("unknown logger {!r}: use one of {}".format(
            name, ", ".join(sorted(LOGGER_NAMES)))) from None


def format_event(event):
    """One event as a line of classic log text (for tests and tools)."""
    return formatEventAsClassicLogText(event)
