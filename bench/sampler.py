"""What the processes use during a run: peak RSS (polled), and CPU over the measured window.

CPU is reported in cores (CPU seconds per wall second): on this 2-core machine a process at 1.0 is
using a whole core, which for a single-threaded eventlet service is its ceiling.
"""

from __future__ import annotations

import threading
import time

import psutil

# processes that are not ours but share the machine: where the rest of the CPU goes
GROUPS = {"postgres": ("postgres",), "rabbitmq": ("beam.smp",)}


def _cpu(process: psutil.Process) -> float | None:
    try:
        times = process.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return None


def _groups() -> dict[str, dict[int, float]]:
    found: dict[str, dict[int, float]] = {name: {} for name in GROUPS}
    for process in psutil.process_iter(["name"]):
        for group, names in GROUPS.items():
            if process.info["name"] in names and (cpu := _cpu(process)) is not None:
                found[group][process.pid] = cpu
    return found


def _machine() -> tuple[float, float]:
    """CPU seconds the machine was busy, and waiting on disk, since boot."""
    times = psutil.cpu_times()
    iowait = getattr(times, "iowait", 0.0)
    return sum(times) - times.idle - iowait, iowait


class Sampler:
    """``measure(t0, t1)`` blocks until ``t1`` and records CPU between the two; RSS is polled meanwhile."""

    def __init__(self, processes: dict[str, psutil.Process], interval_s: float = 0.2):
        self.processes = dict(processes, bench=psutil.Process())
        self.interval_s = interval_s
        self.load: list[psutil.Process] = []
        self._reset()

    def _reset(self) -> None:
        self.peak_rss: dict[str, int] = {}
        self.cpu_cores: dict = {}

    def track_load(self, pids: list[int]) -> None:
        self.load = [psutil.Process(pid) for pid in pids]

    def _poll_rss(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for name, process in self.processes.items():
                try:
                    rss = process.memory_info().rss
                except psutil.Error:
                    continue
                self.peak_rss[name] = max(self.peak_rss.get(name, 0), rss)
            stop.wait(self.interval_s)

    def measure(self, start: float, end: float) -> None:
        self._reset()
        stop = threading.Event()
        poller = threading.Thread(target=self._poll_rss, args=(stop,), daemon=True)
        poller.start()
        try:
            time.sleep(max(0.0, start - time.monotonic()))
            before = self._snapshot()
            time.sleep(max(0.0, end - time.monotonic()))
            after = self._snapshot()
        finally:
            stop.set()
            poller.join()
        seconds = end - start
        for name, cpu in after["own"].items():
            if cpu is not None and before["own"].get(name) is not None:
                self.cpu_cores[name] = round((cpu - before["own"][name]) / seconds, 2)
        for group, pids in after["groups"].items():
            used = sum(cpu - before["groups"][group].get(pid, 0.0) for pid, cpu in pids.items())
            self.cpu_cores[group] = round(used / seconds, 2)
        self.cpu_cores["loadgen"] = [
            round((a - b) / seconds, 2) for a, b in zip(after["load"], before["load"]) if a is not None and b is not None
        ]
        self.cpu_cores["machine"] = round((after["machine"][0] - before["machine"][0]) / seconds, 2)
        self.cpu_cores["iowait"] = round((after["machine"][1] - before["machine"][1]) / seconds, 2)
        # the machine is shared: whatever else ran (another test run, say) shows here
        known = sum(v for k, v in self.cpu_cores.items() if k not in ("loadgen", "machine", "iowait"))
        known += sum(self.cpu_cores["loadgen"])
        self.cpu_cores["other"] = round(max(0.0, self.cpu_cores["machine"] - known), 2)

    def _snapshot(self) -> dict:
        return {
            "own": {name: _cpu(process) for name, process in self.processes.items()},
            "groups": _groups(),
            "load": [_cpu(process) for process in self.load],
            "machine": _machine(),
        }

    def report(self) -> dict:
        return {
            "peak_rss_mb": {name: round(rss / 2**20, 1) for name, rss in sorted(self.peak_rss.items())},
            "cpu_cores": dict(self.cpu_cores),
        }
