"""Child processes of the benchmarks: stopped by their PID, never by name."""

import signal
import subprocess

__all__ = ["stop_process"]


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
