"""A nameko timer whose interval comes from the settings, read when the service starts."""

from __future__ import annotations

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
