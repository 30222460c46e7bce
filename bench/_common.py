"""What every benchmark shares: figure printing, the percentile, errors, and stopping the
child processes it started (by their PID, never by name)."""

import math
import os
import signal
import subprocess

__all__ = ["BenchError", "Figures", "say", "say_tail", "percentile", "stop_process"]


class BenchError(Exception):
    """The benchmark cannot go on; the message says why."""


class Figures:
    """Prints ``name: value unit`` lines and keeps the values for the JSON summary.

    ``targets`` maps a figure's name to its target, printed next to it."""

    def __init__(self, targets=None):
        self.values = {}
        self.targets = targets or {}

    def add(self, name, value, unit, note=""):
        """Record and print one figure."""
        if isinstance(value, float):
            value = round(value, 1) if abs(value) >= 100 else round(value, 3)
        self.values[name] = value
        target = self.targets.get(name)
        notes = [n for n in (note, "target {}".format(target) if target else "") if n]
        print("{}: {} {}{}".format(name, value, unit,
                                   "  ({})".format("; ".join(notes)) if notes else ""),
              flush=True)


def say(text):
    """A comment line: progress and settings, not a figure."""
    print("# " + text, flush=True)


def say_tail(path, lines=10):
    """The last ``lines`` lines of a child's log as comment lines (nothing if unreadable)."""
    try:
        with open(path, errors="replace") as f:
            tail = f.readlines()[-lines:]
    except OSError:
        return
    for line in tail:
        say("{}: {}".format(os.path.basename(path), line.rstrip()))


def percentile(values, fraction):
    """The nearest-rank ``fraction`` percentile of ``values`` (any order); NaN when empty."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))]


def stop_process(proc, timeout=15):
    """SIGTERM a process a benchmark started, SIGKILL it if it outlives ``timeout``
    seconds. Nothing happens to one that already ended."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
