"""scripts/infra.py: what `make run` and `make test` do about a missing or stopped RabbitMQ or PostgreSQL,
decided against a fake machine (nothing is installed or started here)."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "infra.py"
spec = importlib.util.spec_from_file_location("crm_infra_script", SCRIPT)
infra = importlib.util.module_from_spec(spec)
spec.loader.exec_module(infra)


class FakeMachine(infra.Machine):
    def __init__(self, tmp_path, *, programs=(), root=False, running=(), systemd=False, clusters=("16",),
                 installs=True, starts=True):
        self.programs = set(programs)
        self.root = root
        self.running = set(running)  # ports that answer
        self.has_systemd = systemd
        self.cluster_versions = list(clusters)
        self.installs = installs
        self.starts = starts
        self.commands: list[list[str]] = []
        self.said: list[str] = []
        self.tmp_path = tmp_path

    def has(self, program):
        return program in self.programs

    def is_root(self):
        return self.root

    def port_open(self, host, port):
        return port in self.running

    def wait_port(self, host, port, seconds):
        return self.port_open(host, port)

    def systemd(self):
        return self.has_systemd

    def clusters(self):
        return self.cluster_versions

    def run(self, command):
        self.commands.append(command)
        if "install" in command and self.installs:
            self.programs |= {"rabbitmq-server" if "rabbitmq-server" in command else "pg_ctlcluster"}
        if self.starts and ("-detached" in command or "start" in command):
            self.running.add(5672 if any("rabbitmq" in part for part in command) else 5432)
        return 0

    def say(self, message):
        self.said.append(message)

    def home(self):
        return self.tmp_path


def test_servers_that_answer_are_left_alone(tmp_path):
    machine = FakeMachine(tmp_path, running={5672, 5432})
    assert infra.ensure(["rabbitmq", "postgresql"], machine, {}) == 0
    assert machine.commands == [] and machine.said == []


def test_an_installed_but_stopped_broker_is_started_without_installing(tmp_path):
    machine = FakeMachine(tmp_path, programs={"rabbitmq-server", "apt-get"}, root=True)
    assert infra.ensure(["rabbitmq"], machine, {}) == 0
    assert machine.commands == [["rabbitmq-server", "-detached"]]


def test_a_missing_broker_is_installed_with_apt_get_as_root_and_started(tmp_path):
    machine = FakeMachine(tmp_path, programs={"apt-get"}, root=True)
    assert infra.ensure(["rabbitmq"], machine, {}) == 0
    assert machine.commands[0] == ["apt-get", "update", "-qq"]
    assert machine.commands[1][-1] == "rabbitmq-server" and "install" in machine.commands[1]
    assert machine.commands[2] == ["rabbitmq-server", "-detached"]
    assert "installing it" in machine.said[0] and "sudo" not in machine.said[0]


def test_not_root_it_says_it_uses_sudo_before_installing_and_starts_with_systemd_where_it_runs(tmp_path):
    machine = FakeMachine(tmp_path, programs={"apt-get", "sudo"}, systemd=True)
    assert infra.ensure(["rabbitmq"], machine, {}) == 0
    assert all(command[0] == "sudo" for command in machine.commands)
    assert machine.commands[-1] == ["sudo", "systemctl", "start", "rabbitmq-server"]
    assert "with sudo" in machine.said[0]  # said before the first sudo command ran
    assert machine.said.index(machine.said[0]) == 0


def test_without_apt_get_one_message_names_the_package_to_install(tmp_path):
    machine = FakeMachine(tmp_path, programs={"sudo"}, root=False)
    assert infra.ensure(["rabbitmq"], machine, {}) == 1
    assert machine.commands == []
    assert len(machine.said) == 1
    assert "rabbitmq-server is not installed" in machine.said[0] and "no apt-get" in machine.said[0]
    assert "apt-get install rabbitmq-server" in machine.said[0]


def test_without_root_or_sudo_one_message_names_the_package_to_install(tmp_path):
    machine = FakeMachine(tmp_path, programs={"apt-get"}, running={5672})
    assert infra.ensure(["rabbitmq", "postgresql"], machine, {}) == 1
    assert machine.commands == []
    assert len(machine.said) == 1 and "postgresql is not installed" in machine.said[0]
    assert "no sudo" in machine.said[0]


def test_a_failed_apt_get_stops_with_what_to_install(tmp_path):
    machine = FakeMachine(tmp_path, programs={"apt-get"}, root=True, installs=False)
    assert infra.ensure(["rabbitmq"], machine, {}) == 1
    assert "apt-get did not install it" in machine.said[-1]


def test_a_broker_on_another_host_is_not_installed_here(tmp_path):
    machine = FakeMachine(tmp_path, programs={"apt-get"}, root=True)
    assert infra.ensure(["rabbitmq"], machine, {"AMQP_HOST": "rabbit.internal"}) == 1
    assert machine.commands == []
    assert "rabbit.internal:5672" in machine.said[0]


def test_a_fresh_postgresql_is_installed_started_on_its_newest_cluster_and_given_a_password(tmp_path):
    machine = FakeMachine(tmp_path, programs={"apt-get"}, root=True, running={5672}, clusters=("15", "16"))
    assert infra.ensure(["rabbitmq", "postgresql"], machine, {}) == 0
    assert ["pg_ctlcluster", "--skip-systemctl-redirect", "16", "main", "start"] in machine.commands
    alter = machine.commands[-1]
    assert alter[:4] == ["runuser", "-u", "postgres", "--"] and "ALTER ROLE postgres PASSWORD" in alter[-1]
    password = alter[-1].split("'")[1]
    pgpass = tmp_path / ".pgpass"
    assert f"127.0.0.1:5432:*:postgres:{password}" in pgpass.read_text().splitlines()
    assert pgpass.stat().st_mode & 0o777 == 0o600


def test_a_postgresql_that_was_already_installed_keeps_its_passwords(tmp_path):
    machine = FakeMachine(tmp_path, programs={"pg_ctlcluster"}, root=True)
    assert infra.ensure(["postgresql"], machine, {}) == 0
    assert not any("ALTER" in " ".join(command) for command in machine.commands)
    assert not (tmp_path / ".pgpass").exists()


def test_a_server_that_does_not_come_up_is_reported_with_where_to_look(tmp_path):
    machine = FakeMachine(tmp_path, programs={"rabbitmq-server"}, root=True, starts=False)
    assert infra.ensure(["rabbitmq"], machine, {}) == 1
    assert "did not come up" in machine.said[-1] and "/var/log/rabbitmq" in machine.said[-1]


@pytest.mark.parametrize("argv", [[], ["mysql"]])
def test_the_command_line_names_the_servers_it_knows(argv, capsys):
    assert infra.main(argv) == 2
    assert "rabbitmq" in capsys.readouterr().err
