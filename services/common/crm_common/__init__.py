"""The one library shared by the CRM services and the gateway: contracts and plumbing, no business rules.

Importing it first quiets eventlet's and pkg_resources' start notices (``crm_common.serve``): the backup worker and
the command-line tools (``crm-backup``, ``crm-reports``) import it before anything imports eventlet.
"""

from crm_common.serve import quiet_start_notices

quiet_start_notices()
