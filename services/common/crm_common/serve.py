"""``python -m crm_common.serve run --config config.yml clients.service:ClientsService``: ``nameko run`` without the
notices the libraries print on every start.

eventlet announces its own deprecation (an ``EventletDeprecationWarning``, a plain ``Warning`` shown by default)
the moment it is imported, and nameko's command line imports ``pkg_resources``, which warns too. Neither says
anything an operator can act on: importing crm_common (its `__init__`) filters them, before eventlet is imported; every other
warning is shown as before. scripts/run.py starts every process this way, and the Dockerfile and
docker-compose.yml do the same.
"""

from __future__ import annotations

from crm_common import quiet_start_notices


def main() -> None:
    quiet_start_notices()
    from nameko.cli.main import main as nameko_main

    nameko_main()


if __name__ == "__main__":
    main()
