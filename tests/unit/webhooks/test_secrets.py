"""Webhook secrets at rest: sealed with the configured key, bound to their webhook, readable after a key change."""

import pytest

from crm_common.config import ConfigError, Settings
from webhooks.secrets import SecretBox, SecretUnreadable

KEY = "the-current-key-0123456789abcdefghij"
OLD = "the-previous-key-0123456789abcdefghi"


def test_a_sealed_secret_opens_to_itself_and_shows_nothing_of_it():
    box = SecretBox(KEY)

    sealed = box.seal("whsec_0123456789abcdef", "hook-1")

    assert "whsec" not in sealed and sealed.startswith(f"v1:{box.key_id}:")
    assert box.open(sealed, "hook-1") == "whsec_0123456789abcdef"
    assert box.seal("whsec_0123456789abcdef", "hook-1") != sealed  # a fresh nonce each time


def test_a_secret_copied_to_another_webhook_or_tampered_with_does_not_open():
    box = SecretBox(KEY)
    sealed = box.seal("whsec_0123456789abcdef", "hook-1")
    prefix, blob = sealed.rsplit(":", 1)
    tampered = f"{prefix}:{blob[:-4]}{'AAAA' if blob[-4:] != 'AAAA' else 'BBBB'}"

    for bad, webhook_id in ((sealed, "hook-2"), (tampered, "hook-1"), ("garbage", "hook-1")):
        with pytest.raises(SecretUnreadable):
            box.open(bad, webhook_id)


def test_after_a_key_change_the_old_key_still_opens_until_the_secret_is_sealed_again():
    sealed = SecretBox(OLD).seal("whsec_0123456789abcdef", "hook-1")
    with pytest.raises(SecretUnreadable, match="not configured"):
        SecretBox(KEY).open(sealed, "hook-1")

    box = SecretBox(KEY, old_keys=(OLD,))
    assert box.open(sealed, "hook-1") == "whsec_0123456789abcdef"
    assert not box.is_current(sealed)
    assert box.is_current(box.seal(box.open(sealed, "hook-1"), "hook-1"))


def test_development_keeps_a_generated_key_and_production_needs_one_set(tmp_path):
    development = Settings(data_dir=str(tmp_path))
    sealed = SecretBox.from_settings(development).seal("whsec_0123456789abcdef", "hook-1")
    assert (tmp_path / "webhook_key").stat().st_mode & 0o777 == 0o600
    assert SecretBox.from_settings(Settings(data_dir=str(tmp_path))).open(sealed, "hook-1") == "whsec_0123456789abcdef"

    with pytest.raises(ConfigError, match="CRM_WEBHOOK_KEY"):
        SecretBox.from_settings(Settings(env="production", data_dir=str(tmp_path)))
    assert SecretBox.from_settings(Settings(env="production", webhook_key=KEY)).key_id == SecretBox(KEY).key_id
