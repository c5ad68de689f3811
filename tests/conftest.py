"""Test-wide setup: nameko's services run on eventlet, so the whole test process is monkey patched."""

import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)

import eventlet  # noqa: E402

eventlet.monkey_patch()

pytest_plugins = ["crm_common.testing.fixtures"]
