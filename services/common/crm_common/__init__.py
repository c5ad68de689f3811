"""The one library shared by the CRM services and the gateway: contracts and plumbing, no business rules.

Importing it quiets eventlet's and pkg_resources' start notices: eventlet announces its own deprecation (an
``EventletDeprecationWarning``, a plain ``Warning`` shown by default) the moment it is imported, and nameko's
command line imports ``pkg_resources``, which warns too; neither says anything an operator can act on. Every
process imports crm_common before eventlet: the services through ``python -m crm_common.serve``, the backup worker
and the command-line tools through their own imports. Every other warning is shown as before.
"""

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


quiet_start_notices()
