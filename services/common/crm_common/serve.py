"""``python -m crm_common.serve run --config config.yml clients.service:ClientsService``: ``nameko run`` without the
notices the libraries print on every start.

eventlet announces its own deprecation (an ``EventletDeprecationWarning``, a plain ``Warning`` shown by default)
the moment it is imported, and nameko's command line imports ``pkg_resources``, which warns too. Neither says
anything an operator can act on, so the filters are set here, before anything imports eventlet; every other
warning is shown as before. scripts/run.py starts every process this way, and the Dockerfile and
docker-compose.yml do the same.
"""

from __future__ import annotations

import warnings

# (message at the start of the warning's text, as a regular expression; category)
NOTICES = (
    (r"\s*Eventlet is deprecated", Warning),
    (r"pkg_resources is deprecated", UserWarning),
)


def quiet_start_notices() -> None:
    """Ignore eventlet's and pkg_resources' deprecation notices in this process (call before importing eventlet)."""
    for message, category in NOTICES:
        warnings.filterwarnings("ignore", message=message, category=category)


def main() -> None:
    quiet_start_notices()
    from nameko.cli.main import main as nameko_main

    nameko_main()


if __name__ == "__main__":
    main()
