"""Archive keys: ``CRM_BACKUP_KEY`` (the current one) and ``CRM_BACKUP_OLD_KEYS`` (earlier ones, to read
older archives). A key is 32 random bytes written as base64 (url-safe or not) or 64 hex digits; its id,
written in every archive's header, is a hash of it, so the right key is found without trying them all.

In development, with no key set, one is made once in ``<CRM_DATA_DIR>/backup.key`` and used by the
service and by ``crm-backup`` alike; production refuses to start without ``CRM_BACKUP_KEY``
(``crm_common.config.Settings.check``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from crm_common.config import ConfigError, Settings

log = logging.getLogger(__name__)

KEY_BYTES = 32
DEV_KEY_FILE = "backup.key"


def generate_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")


def parse_key(text: str, name: str = "CRM_BACKUP_KEY") -> bytes:
    text = text.strip()
    candidates = []
    if len(text) == 2 * KEY_BYTES:
        try:
            candidates.append(bytes.fromhex(text))
        except ValueError:
            pass
    for decode in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            candidates.append(decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, ValueError):
            pass
    for key in candidates:
        if len(key) == KEY_BYTES:
            return key
    raise ConfigError(f"{name} must be {KEY_BYTES} random bytes in base64 or hex; `crm-backup keygen` prints one")


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"crm-backup-key-id:" + key).hexdigest()[:16]


@dataclass(frozen=True)
class Keyring:
    current: bytes
    by_id: dict[str, bytes] = field(default_factory=dict)
    source: str = "CRM_BACKUP_KEY"

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    def find(self, wanted_id: str) -> bytes | None:
        return self.by_id.get(wanted_id)


def data_dir(settings: Settings) -> Path:
    return Path(settings.data_dir).expanduser().resolve()


def dev_key_path(settings: Settings) -> Path:
    return data_dir(settings) / DEV_KEY_FILE


def load_keyring(settings: Settings) -> Keyring:
    """The keys from the settings; without ``CRM_BACKUP_KEY`` outside production, the development key
    (made on first use)."""
    if settings.backup_key.strip():
        current = parse_key(settings.backup_key)
        source = "CRM_BACKUP_KEY"
    elif settings.is_production:
        raise ConfigError("CRM_BACKUP_KEY must be set in production; `crm-backup keygen` prints a new key")
    else:
        path = ensure_dev_key(settings)
        current = parse_key(path.read_text(encoding="utf-8"), str(path))
        source = str(path)
    keys = {key_id(current): current}
    for index, old in enumerate(k for k in settings.backup_old_keys.split(",") if k.strip()):
        key = parse_key(old, f"CRM_BACKUP_OLD_KEYS (key {index + 1})")
        keys.setdefault(key_id(key), key)
    return Keyring(current=current, by_id=keys, source=source)


def ensure_dev_key(settings: Settings) -> Path:
    """The development key file, made once (mode 600) if missing. As for the token signing key
    (``crm_common.config.signing_key``): each process writes a candidate to a private file and hard-links it
    to the final name, which succeeds for one of them, so no process ever reads a half-written key."""
    path = dev_key_path(settings)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, candidate = tempfile.mkstemp(dir=path.parent, prefix=f".{DEV_KEY_FILE}.")  # mode 600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(generate_key() + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        try:
            os.link(candidate, path)
            log.warning("CRM_BACKUP_KEY is not set: made a development backup key in %s (keep a copy off this "
                        "machine; without it the backups cannot be read)", path)
        except FileExistsError:
            pass  # another process made it a moment ago: its key is the one
    finally:
        os.unlink(candidate)
    return path
