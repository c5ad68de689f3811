"""Off-site copies with rclone: one file per backup on every target of ``CRM_BACKUP_OFFSITE``.

A target is a local folder (``/mnt/usb/crm``) or any rclone remote (``offsite:crm`` configured in rclone's
config file or ``RCLONE_CONFIG_<NAME>_...`` variables; ``:sftp,host=...:crm`` connection strings too).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from backup.domain import ARCHIVE_NAME, archive_for, is_local_target


class OffsiteError(Exception):
    """A target could not be reached or written; the message is the reason."""


def _join(target: str, name: str) -> str:
    if target.endswith((":", "/")):
        return target + name
    return f"{target}/{name}"


def _resolve(target: str) -> str:
    if is_local_target(target):
        return str(Path(target).expanduser().resolve())
    return target


def rclone(args: list[str], retries: int = 3, timeout_s: float = 3600) -> str:
    binary = shutil.which("rclone")
    if not binary:
        raise OffsiteError("rclone is not installed (apt-get install rclone)")
    command = [binary, *args, "--retries", str(max(retries, 1)), "--low-level-retries", str(max(retries, 1)),
               "--contimeout", "15s", "--timeout", "60s", "--quiet"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise OffsiteError(f"rclone {args[0]} did not finish in {timeout_s:g} s") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        raise OffsiteError(lines[-1][:500] if lines else f"rclone {args[0]} exited with {done.returncode}")
    return done.stdout.decode("utf-8", "replace")


def copy(local: Path, target: str, retries: int = 3) -> None:
    """Copy the archive to the target under its own name, and check the copy's size."""
    destination = _join(_resolve(target), local.name)
    rclone(["copyto", str(local), destination], retries)
    listed = rclone(["lsf", "--format", "s", destination], retries).strip()
    if listed != str(local.stat().st_size):
        raise OffsiteError(f"the copy on {target} has {listed or 'no'} bytes, the archive {local.stat().st_size}")


def list_archives(target: str, retries: int = 3) -> list[str]:
    """Names of the CRM archives on a target (none if the folder does not exist yet)."""
    try:
        names = rclone(["lsf", "--files-only", _resolve(target)], retries).splitlines()
    except OffsiteError as exc:
        if "directory not found" in str(exc).lower():
            return []
        raise
    return sorted(name for name in names if ARCHIVE_NAME.match(name.strip()))


def find(target: str, backup_id: str, retries: int = 3) -> str | None:
    return archive_for(list_archives(target, retries), backup_id)


def fetch(target: str, name: str, destination: Path, retries: int = 3) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    rclone(["copyto", _join(_resolve(target), name), str(destination)], retries)


def delete(target: str, name: str, retries: int = 3) -> None:
    rclone(["deletefile", _join(_resolve(target), name)], retries)
