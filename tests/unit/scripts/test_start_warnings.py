"""Starting the CRM prints no deprecation notices: eventlet's and pkg_resources' are filtered at the entry points
(crm_common/serve.py, which `make run`, the Dockerfile and docker-compose.yml start every process with)."""

import subprocess
import sys
from pathlib import Path

from crm_common import registry

ROOT = Path(__file__).resolve().parents[3]
SERVICES = " ".join(f"import {spec.entry.split(':')[0]};" for spec in registry.REGISTRY)


def stderr_of(*args: str) -> str:
    # -W default shows every DeprecationWarning, not only those raised in __main__
    done = subprocess.run([sys.executable, "-W", "default", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_the_service_runner_starts_without_a_warning():
    assert "Warning" not in stderr_of("-m", "crm_common.serve", "run", "--help")


def test_every_service_and_the_gateway_load_under_the_runner_without_a_warning():
    code = f"from crm_common.serve import quiet_start_notices; quiet_start_notices(); import nameko.cli.main; {SERVICES}"
    assert "Warning" not in stderr_of("-c", code)


def test_run_py_loads_without_a_warning():
    code = "import runpy, sys; sys.argv = ['run.py', '--help']; runpy.run_path('scripts/run.py', run_name='__main__')"
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr


def test_without_the_filters_eventlet_does_warn_so_the_tests_above_can_fail():
    assert "Eventlet is deprecated" in stderr_of("-c", "import eventlet")
