"""Webhook secrets encrypted at rest: the database holds only ciphertext the service can open to sign.

AES-256-GCM (``cryptography``) with a key derived by HKDF from ``CRM_WEBHOOK_KEY`` (in development without it,
a key generated once under ``CRM_DATA_DIR``, as the token signing key is). The webhook's id is the associated
data, so a ciphertext copied onto another webhook does not open. A sealed secret names its key by a short id:
``v1:<key id>:<base64 of nonce + ciphertext>``; keys listed in ``CRM_WEBHOOK_OLD_KEYS`` still open what they
sealed, and ``reseal`` moves a secret to the current key.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crm_common.config import ConfigError, Settings, generated_key

VERSION = "v1"
_INFO = b"crm webhook secrets v1"


class SecretUnreadable(Exception):
    """A stored secret no configured key opens (the key was changed without keeping the old one)."""


def _derive(key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key.encode("utf-8"))


def _key_id(derived: bytes) -> str:
    return hashlib.sha256(derived).hexdigest()[:8]


class SecretBox:
    def __init__(self, key: str, old_keys: tuple[str, ...] = ()):
        derived = _derive(key)
        self.key_id = _key_id(derived)
        self._current = AESGCM(derived)
        self._keys = {self.key_id: self._current}
        for old in old_keys:
            old_derived = _derive(old)
            self._keys.setdefault(_key_id(old_derived), AESGCM(old_derived))

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        key = settings.webhook_key
        if not key:
            if settings.is_production:
                # a key file on one machine cannot serve replicas on several
                raise ConfigError("refusing to start in production: CRM_WEBHOOK_KEY must be set to a random string of "
                                  "32+ characters (it encrypts the webhooks' secrets)")
            key = generated_key(settings.webhook_key_path, "key for webhook secrets", "CRM_WEBHOOK_KEY")
        return cls(key, settings.webhook_old_keys)

    def seal(self, secret: str, webhook_id: str) -> str:
        nonce = os.urandom(12)
        sealed = self._current.encrypt(nonce, secret.encode("utf-8"), webhook_id.encode("ascii"))
        return f"{VERSION}:{self.key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode('ascii')}"

    def open(self, sealed: str, webhook_id: str) -> str:
        try:
            version, key_id, blob = sealed.split(":", 2)
            raw = base64.urlsafe_b64decode(blob.encode("ascii"))
        except (ValueError, UnicodeError):
            raise SecretUnreadable("the stored secret is malformed") from None
        aead = self._keys.get(key_id)
        if version != VERSION or aead is None:
            raise SecretUnreadable("the secret was sealed with a key that is not configured (CRM_WEBHOOK_KEY, "
                                   "CRM_WEBHOOK_OLD_KEYS); set the webhook's secret again")
        try:
            return aead.decrypt(raw[:12], raw[12:], webhook_id.encode("ascii")).decode("utf-8")
        except InvalidTag:
            raise SecretUnreadable("the stored secret does not open with its key") from None

    def is_current(self, sealed: str) -> bool:
        return sealed.split(":", 2)[1:2] == [self.key_id]
