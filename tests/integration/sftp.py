"""A real OpenSSH SFTP server on 127.0.0.1, for off-site copies: sshd with its own host key, client key and
config in a temporary folder, on a free port, stopped at the end. rclone reaches it as the remote
``crmsftp:`` through ``RCLONE_CONFIG_CRMSFTP_*`` variables (which the backup worker processes inherit)."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from nameko.testing.utils import find_free_port


@dataclass
class SftpServer:
    port: int
    root: Path
    env: dict[str, str]
    process: subprocess.Popen

    def remote(self, folder: str) -> str:
        return f"crmsftp:{self.root / folder}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_sftp(workdir: Path) -> SftpServer:
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists():
        raise RuntimeError("sshd is missing: `make test` installs openssh-server (scripts/ensure_tools.sh)")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    workdir.mkdir(parents=True, exist_ok=True)
    host_key, client_key = workdir / "host_ed25519", workdir / "client_ed25519"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (workdir / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    os.chmod(workdir / "authorized_keys", 0o600)
    port = find_free_port()
    config = workdir / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {host_key}\nPidFile {workdir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    known_hosts = workdir / "known_hosts"
    host_public = host_key.with_suffix(".pub").read_text().split()
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_public[0]} {host_public[1]}\n")
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=open(workdir / "sshd.log", "w"))
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not start: {(workdir / 'sshd.log').read_text()}") from None
            time.sleep(0.05)
    root = workdir / "remote"
    root.mkdir()
    env = {
        "RCLONE_CONFIG_CRMSFTP_TYPE": "sftp", "RCLONE_CONFIG_CRMSFTP_HOST": "127.0.0.1",
        "RCLONE_CONFIG_CRMSFTP_PORT": str(port), "RCLONE_CONFIG_CRMSFTP_USER": getpass.getuser(),
        "RCLONE_CONFIG_CRMSFTP_KEY_FILE": str(client_key), "RCLONE_CONFIG_CRMSFTP_KNOWN_HOSTS_FILE": str(known_hosts),
        "RCLONE_CONFIG_CRMSFTP_SHELL_TYPE": "unix",
    }
    return SftpServer(port, root, env, process)
