"""Nameko timers whose interval comes from the settings, read when the service starts; one of them can be
woken early."""

from __future__ import annotations

import os
import socket
import uuid

from eventlet.queue import Empty, Full, LightQueue
from nameko.extensions import DependencyProvider
from nameko.timer import Timer

from crm_common.config import Settings


class SettingsTimer(Timer):
    """``@settings_timer("stuck_check_interval_s")`` fires every ``Settings.stuck_check_interval_s`` seconds."""

    def __init__(self, setting: str, eager: bool = False, **kwargs):
        super().__init__(interval=None, eager=eager, **kwargs)
        self.setting = setting

    def setup(self):
        self.interval = float(getattr(Settings.from_config(self.container.config), self.setting))
        super().setup()


settings_timer = SettingsTimer.decorator


class WakeableTimer(SettingsTimer):
    """A settings timer that can be woken before its interval is up, and that fires again at once when its
    method returns a true value (there is more to do): ``@wakeable_timer("import_poll_s")``.

    Wake it from an RPC of the same service through ``Wake("<method name>")`` (a dependency), e.g. right
    after committing work for it."""

    def __init__(self, setting: str, **kwargs):
        super().__init__(setting, **kwargs)
        self._wakeups: LightQueue = LightQueue(maxsize=1)

    def wake(self) -> None:
        try:
            self._wakeups.put_nowait(True)
        except Full:
            pass

    def stop(self):
        self.should_stop.send(True)
        self.wake()
        self.gt.wait()

    def _run(self):
        while True:
            try:
                self._wakeups.get(timeout=self.interval)
            except Empty:
                pass
            if self.should_stop.ready():
                break
            self.handle_timer_tick()
            self.worker_complete.wait()
            self.worker_complete.reset()

    def handle_result(self, worker_ctx, result, exc_info):
        if exc_info is None and result:
            self.wake()
        return super().handle_result(worker_ctx, result, exc_info)


wakeable_timer = WakeableTimer.decorator


class Wake(DependencyProvider):
    """``wake_imports = Wake("process_imports")``: ``self.wake_imports()`` wakes that timer of this replica."""

    def __init__(self, method_name: str):
        self.method_name = method_name

    def get_dependency(self, worker_ctx):
        timers = [ep for ep in self.container.entrypoints
                  if isinstance(ep, WakeableTimer) and ep.method_name == self.method_name]

        def wake() -> None:
            for timer in timers:
                timer.wake()

        return wake


class ReplicaName(DependencyProvider):
    """A name for this running copy of the service, unique among its replicas (host, process, container):
    what a lease records as its holder."""

    def setup(self):
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def get_dependency(self, worker_ctx):
        return self.name
