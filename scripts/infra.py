#!/usr/bin/env python3
"""Make RabbitMQ and PostgreSQL answer on this machine: install them from the distribution's packages where they
are missing, start them where they are down (standard library only).

    python3 scripts/infra.py rabbitmq             # make run: the broker
    python3 scripts/infra.py rabbitmq postgresql  # make test: the broker and the database server

A server that answers on its port (AMQP_HOST/AMQP_PORT, PGHOST/PGPORT; 127.0.0.1:5672 and :5432 by default) is
left alone. One that does not, on this machine, is installed if its programs are missing (``apt-get`` as root,
``sudo apt-get`` otherwise, saying so first, since sudo may ask for a password) and started (the same way).
Where that cannot work (no apt-get; not root and no sudo; a server on another host that does not answer) it
prints one message naming what to install or set, and exits 1.

After a fresh PostgreSQL install the ``postgres`` role gets a random password, written to ``~/.pgpass`` for
127.0.0.1, so the tests' ``postgresql://postgres@127.0.0.1:5432`` logs in without editing ``pg_hba.conf``.

Every probe of the machine goes through ``Machine``, so the decisions are unit-tested with a fake one
(tests/unit/scripts/test_infra.py).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

# server -> (Debian package, programs that show it is installed, environment of its address, default)
SERVERS = {
    "rabbitmq": ("rabbitmq-server", ("rabbitmq-server",), ("AMQP_HOST", "AMQP_PORT"), ("127.0.0.1", 5672)),
    "postgresql": ("postgresql", ("pg_ctlcluster",), ("PGHOST", "PGPORT"), ("127.0.0.1", 5432)),
}
LOCAL = ("127.0.0.1", "localhost", "::1")
STARTUP_S = {"rabbitmq": 90.0, "postgresql": 60.0}


class CannotDo(Exception):
    """Nothing here can install or start what is needed; the message says what the person should do."""


class Machine:
    """The probes and commands the decisions need; tests replace it with a fake."""

    def has(self, program: str) -> bool:
        return shutil.which(program) is not None or Path("/usr/sbin", program).exists()

    def is_root(self) -> bool:
        return os.geteuid() == 0

    def port_open(self, host: str, port: int) -> bool:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            return False

    def wait_port(self, host: str, port: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.port_open(host, port):
                return True
            time.sleep(1.0)
        return self.port_open(host, port)

    def systemd(self) -> bool:
        return Path("/run/systemd/system").is_dir() and self.has("systemctl")

    def clusters(self) -> list[str]:
        """The PostgreSQL versions with a cluster configured (/etc/postgresql/<version>), oldest first."""
        base = Path("/etc/postgresql")
        found = [p.name for p in base.iterdir() if (p / "main").is_dir()] if base.is_dir() else []
        return sorted(found, key=lambda v: [int(part) for part in v.split(".") if part.isdigit()])

    def run(self, command: list[str]) -> int:
        return subprocess.run(command, check=False).returncode

    def say(self, message: str) -> None:
        print(f"[infra] {message}", file=sys.stderr, flush=True)

    def home(self) -> Path:
        return Path.home()


def address(server: str, environ) -> tuple[str, int]:
    _, _, (host_var, port_var), (host, port) = SERVERS[server]
    return environ.get(host_var) or host, int(environ.get(port_var) or port)


def what_to_install(packages: list[str], why: str) -> str:
    listed = " ".join(packages)
    return (f"{listed} {'is' if len(packages) == 1 else 'are'} not installed, and {why}. Install "
            f"{'it' if len(packages) == 1 else 'them'} (Debian/Ubuntu: `sudo apt-get install {listed}`; elsewhere your "
            "system's RabbitMQ/PostgreSQL packages, or `docker compose up -d rabbitmq postgres`), or set AMQP_URI / "
            "CRM_DATABASE_URL (and for the tests AMQP_HOST, PGHOST) to servers you have; then run the command again.")


def privilege(machine: Machine, packages: list[str], why: str = "") -> list[str]:
    """The prefix that runs a command as root: nothing as root, ``sudo`` where it exists; else CannotDo."""
    if machine.is_root():
        return []
    if machine.has("sudo"):
        return ["sudo"]
    raise CannotDo(what_to_install(packages, why or "this user is not root and there is no sudo to install them"))


def install_commands(packages: list[str], machine: Machine) -> list[list[str]]:
    """The apt-get commands that install ``packages`` here, or CannotDo saying what the person must install."""
    if not machine.has("apt-get"):
        raise CannotDo(what_to_install(packages, "there is no apt-get on this machine to install them with"))
    sudo = privilege(machine, packages)
    return [
        [*sudo, "apt-get", "update", "-qq"],
        [*sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
         "--no-install-recommends", *packages],
    ]


def start_command(server: str, machine: Machine) -> list[str]:
    """How to start the installed local server (the same user rule as installing)."""
    package = SERVERS[server][0]
    sudo = privilege(machine, [package], "it is not running and this user may not start it (not root, no sudo)")
    if server == "rabbitmq":
        if machine.systemd():
            return [*sudo, "systemctl", "start", "rabbitmq-server"]
        return [*sudo, "rabbitmq-server", "-detached"]
    clusters = machine.clusters()
    if not clusters:
        raise CannotDo("PostgreSQL is installed but has no cluster (/etc/postgresql/<version>/main): create one with "
                       "`sudo pg_createcluster <version> main`, then run the command again.")
    return [*sudo, "pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main", "start"]


def set_postgres_password(machine: Machine) -> None:
    """A fresh cluster lets ``postgres`` in over TCP by password only: give it one and keep it in ~/.pgpass."""
    password = secrets.token_urlsafe(18)
    as_postgres = ["runuser", "-u", "postgres", "--"] if machine.is_root() else ["sudo", "-u", "postgres"]
    if machine.run([*as_postgres, "psql", "-q", "-c", f"ALTER ROLE postgres PASSWORD '{password}'"]) != 0:
        machine.say("could not give the postgres role a password: the tests may not log in "
                    "(set CRM_TEST_DATABASE_URL to a URL with a password)")
        return
    pgpass = machine.home() / ".pgpass"
    kept = pgpass.read_text(encoding="utf-8").splitlines() if pgpass.exists() else []
    kept = [line for line in kept if not line.startswith(("127.0.0.1:5432:*:postgres:", "localhost:5432:*:postgres:"))]
    pgpass.write_text("\n".join([*kept, f"127.0.0.1:5432:*:postgres:{password}",
                                 f"localhost:5432:*:postgres:{password}"]) + "\n", encoding="utf-8")
    pgpass.chmod(0o600)
    machine.say(f"gave the new PostgreSQL's postgres role a password, kept in {pgpass}")


def ensure_server(server: str, machine: Machine, environ) -> None:
    """Make ``server`` answer, installing and starting it if needed; CannotDo when that is impossible here."""
    package, programs, _, _ = SERVERS[server]
    host, port = address(server, environ)
    if machine.port_open(host, port):
        return
    if host not in LOCAL:
        raise CannotDo(f"{package} does not answer at {host}:{port}, which is not this machine: start it there, "
                       "or point the address at a server that runs.")
    installed_now = False
    if not any(machine.has(program) for program in programs):
        commands = install_commands([package], machine)
        sudo = " with sudo (it may ask for your password)" if commands[0][0] == "sudo" else ""
        machine.say(f"{package} is not installed: installing it from the distribution's packages{sudo}")
        for command in commands:
            if machine.run(command) != 0:
                raise CannotDo(what_to_install([package], f"`{' '.join(command)}` failed"))
        if not any(machine.has(program) for program in programs):
            raise CannotDo(what_to_install([package], "apt-get did not install it"))
        installed_now = True
        # the package's own scripts start it where they can (systemd)
        if machine.wait_port(host, port, 5):
            if server == "postgresql":
                set_postgres_password(machine)
            return
    command = start_command(server, machine)
    machine.say(f"{package} is not running at {host}:{port}: starting it (`{' '.join(command)}`)")
    machine.run(command)
    if not machine.wait_port(host, port, STARTUP_S[server]):
        raise CannotDo(f"{package} did not come up at {host}:{port}; see its log "
                       f"({'/var/log/rabbitmq' if server == 'rabbitmq' else '/var/log/postgresql'}).")
    if installed_now and server == "postgresql":
        set_postgres_password(machine)


def ensure(servers: list[str], machine: Machine, environ=os.environ) -> int:
    """0 when every server answers (now), else 1 after one message saying what to do."""
    for server in servers:
        try:
            ensure_server(server, machine, environ)
        except CannotDo as exc:
            machine.say(str(exc))
            return 1
    return 0


def main(argv: list[str]) -> int:
    unknown = [name for name in argv if name not in SERVERS]
    if not argv or unknown:
        print(f"usage: infra.py {' | '.join(SERVERS)} ...", file=sys.stderr)
        return 2
    return ensure(argv, Machine())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
