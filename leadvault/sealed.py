"""Payloads sealed under a data key of their own (mails about no lead, inbox items)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from leadvault.crypto import Vault, WrappedKey


@dataclasses.dataclass(frozen=True)
class SealedPayload:
    owner: str
    payload: bytes
    key: bytes
    key_version: int


def seal(vault: Vault, field: str, value: Any) -> SealedPayload:
    owner = str(uuid.uuid4())
    key, wrapped = vault.new_data_key(owner)
    return SealedPayload(
        owner, key.encrypt_json(f"{field}/{owner}", value), wrapped.wrapped, wrapped.version
    )


def unseal(vault: Vault, field: str, sealed: SealedPayload) -> Any:
    data_key = vault.unwrap(WrappedKey(sealed.key, sealed.key_version), sealed.owner)
    return data_key.decrypt_json(f"{field}/{sealed.owner}", sealed.payload)
