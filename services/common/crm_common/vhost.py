"""One RabbitMQ vhost per deployment: create ``make run``'s vhost where the user may, and refuse to start a second
system on a vhost whose queues another one already consumes.

Two CRMs on one vhost share every queue: each would answer the other's RPC calls and take half of the other's
events, silently mixing their data. ``AMQP_URI``'s path names the vhost (``amqp://…:5672/crm`` by default, not
the broker's shared ``/``); a vhost that does not exist is created through the management API (port 15672, the
URI's user) or ``rabbitmqctl`` (as root), and where neither is allowed the message says what to run or set.
"""

from __future__ import annotations

import shutil
import subprocess
from urllib.parse import quote, unquote, urlparse

from kombu import Connection


class VhostError(Exception):
    """The vhost cannot be used as it is; the message says what to do. ``final``: trying again will not help
    (the vhost is missing and cannot be created here, or another system uses it)."""

    def __init__(self, message: str, final: bool = True):
        super().__init__(message)
        self.final = final


def vhost_of(amqp_uri: str) -> str:
    path = urlparse(amqp_uri).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def with_vhost(amqp_uri: str, vhost: str) -> str:
    url = urlparse(amqp_uri)
    return url._replace(path="/" + quote(vhost, safe="")).geturl()


def _connects(amqp_uri: str) -> Exception | None:
    try:
        with Connection(amqp_uri, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
        return None
    except Exception as exc:  # noqa: BLE001 - told to the caller
        return exc


def _missing_vhost(problem: Exception) -> bool:
    text = str(problem)
    return "NOT_ALLOWED" in text or "vhost" in text.lower() and "not found" in text.lower()


def _create_by_management_api(amqp_uri: str, vhost: str, management_port: int = 15672) -> bool:
    import requests

    url = urlparse(amqp_uri)
    user, password = unquote(url.username or "guest"), unquote(url.password or "guest")
    base = f"http://{url.hostname or '127.0.0.1'}:{management_port}/api"
    name = quote(vhost, safe="")
    try:
        created = requests.put(f"{base}/vhosts/{name}", auth=(user, password), timeout=10)
        if created.status_code not in (201, 204):
            return False
        allowed = requests.put(f"{base}/permissions/{name}/{quote(user, safe='')}", auth=(user, password),
                               json={"configure": ".*", "write": ".*", "read": ".*"}, timeout=10)
        return allowed.status_code in (201, 204)
    except requests.RequestException:
        return False


def _create_by_rabbitmqctl(amqp_uri: str, vhost: str) -> bool:
    url = urlparse(amqp_uri)
    if url.hostname not in (None, "127.0.0.1", "localhost", "::1") or not shutil.which("rabbitmqctl"):
        return False
    user = unquote(url.username or "guest")
    for command in (["add_vhost", vhost], ["set_permissions", "-p", vhost, user, ".*", ".*", ".*"]):
        try:
            done = subprocess.run(["rabbitmqctl", "-q", *command], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return False
        if done.returncode != 0 and "already exists" not in (done.stderr + done.stdout):
            return False
    return True


def ensure_vhost(amqp_uri: str) -> str:
    """Make sure the URI's vhost exists and lets its user in; what was done, for the console. VhostError if the
    vhost is missing and cannot be created here, or the broker refuses for another reason."""
    vhost = vhost_of(amqp_uri)
    problem = _connects(amqp_uri)
    if problem is None:
        return f"vhost '{vhost}'"
    if not _missing_vhost(problem):
        raise VhostError(f"RabbitMQ does not let us in to vhost '{vhost}': {problem}", final=False)
    url = urlparse(amqp_uri)
    user = unquote(url.username or "guest")
    if _create_by_management_api(amqp_uri, vhost) or _create_by_rabbitmqctl(amqp_uri, vhost):
        again = _connects(amqp_uri)
        if again is None:
            return f"vhost '{vhost}' (created)"
        problem = again
    raise VhostError(
        f"RabbitMQ has no vhost '{vhost}' that user '{user}' may use, and it could not be created from here "
        f"({problem}). Create it: `sudo rabbitmqctl add_vhost {vhost} && sudo rabbitmqctl set_permissions -p {vhost} "
        f"{user} '.*' '.*' '.*'`, or set AMQP_URI to a vhost you have (one vhost per deployment)."
    )


def consumers_of(amqp_uri: str, queues: list[str]) -> dict[str, int]:
    """How many consumers each existing queue of ``queues`` has now (queues that do not exist are left out)."""
    found = {}
    with Connection(amqp_uri, connect_timeout=5) as connection:
        connection.ensure_connection(max_retries=1)
        for queue in queues:
            channel = connection.channel()
            try:
                _, _, consumers = channel.queue_declare(queue=queue, passive=True)
                found[queue] = consumers
            except Exception:  # noqa: BLE001 - a passive declare of a missing queue closes the channel (404)
                continue
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: BLE001 - already closed by the broker
                    pass
    return found


def refuse_if_taken(amqp_uri: str, services: list[str]) -> None:
    """VhostError when another system already consumes these services' RPC queues on the vhost."""
    taken = {queue: n for queue, n in consumers_of(amqp_uri, [f"rpc-{name}" for name in services]).items() if n}
    if not taken:
        return
    vhost = vhost_of(amqp_uri)
    other = "crm-2" if vhost != "crm-2" else "crm-3"
    listed = ", ".join(f"{queue} ({n} consumer{'s' if n != 1 else ''})" for queue, n in sorted(taken.items()))
    raise VhostError(
        f"another CRM already runs on RabbitMQ vhost '{vhost}': it consumes {listed}. Two systems on one vhost answer "
        "each other's calls and take each other's events, mixing their data. Stop the other one, or give this one a "
        f"vhost of its own: AMQP_URI={with_vhost(_without_password(amqp_uri), other)} make run "
        "(created if your RabbitMQ user may; see docs/operations.md, one vhost per deployment)."
    )


def _without_password(amqp_uri: str) -> str:
    url = urlparse(amqp_uri)
    if url.password is None or url.password == "guest":
        return amqp_uri
    netloc = f"{url.username}:***@{url.hostname}" + (f":{url.port}" if url.port else "")
    return url._replace(netloc=netloc).geturl()
