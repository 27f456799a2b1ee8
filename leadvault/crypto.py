"""The one module that touches ``cryptography`` and ``itsdangerous``.

Envelope encryption: every lead has its own random AES-256-GCM data key. The
data key is stored wrapped (encrypted) by a versioned master key from the key
ring; every personal field is encrypted under the data key with the lead id
and the field name as associated data, so a ciphertext moved to another lead
or field fails to decrypt. Destroying the wrapped data key makes every field
of that lead unreadable (crypto-shredding). Rotating the master key re-wraps
data keys only; field ciphertexts stay as they are.

Lookups by email use a blind index: HMAC-SHA256 of the normalised address
under a key of its own. Signed tokens use a salt per purpose and a list of
signing keys so a new key can be added without breaking links in flight.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes

from leadvault import addresses, clock

KEYRING_FORMAT = 1
_NONCE_BYTES = 12
_KEY_BYTES = 32


class KeyringError(Exception):
    """The key ring file is missing, unreadable or malformed."""


class DecryptionError(Exception):
    """A ciphertext does not belong to this lead/field or its key is gone."""


class TokenInvalid(Exception):
    """A signed token was tampered with or signed for another purpose."""


class TokenExpired(Exception):
    """A signed token is genuine but older than its maximum age."""

    def __init__(self, payload: Any) -> None:
        super().__init__("token expired")
        self.payload = payload


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass
class Keyring:
    """Master keys by version, the blind-index key and the token signing keys."""

    master_keys: dict[int, bytes]
    active_version: int
    blind_index_key: bytes
    signing_keys: list[bytes]
    path: Path | None = None
    # When the active master key was made (scheduled rotation counts from here);
    # None in a key ring written before it was recorded.
    rotated_at: dt.datetime | None = None

    @classmethod
    def generate(cls) -> Keyring:
        return cls(
            master_keys={1: AESGCM.generate_key(bit_length=256)},
            active_version=1,
            blind_index_key=secrets.token_bytes(_KEY_BYTES),
            signing_keys=[secrets.token_bytes(_KEY_BYTES)],
            rotated_at=clock.now(),
        )

    @classmethod
    def load(cls, path: Path) -> Keyring:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise KeyringError(f"{path} does not exist") from None
        except PermissionError:
            raise KeyringError(f"{path} is not readable by this user") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise KeyringError(
                f"{path} is not a Leadvault key ring ({type(exc).__name__})"
            ) from None
        try:
            if raw["format"] != KEYRING_FORMAT:
                raise KeyringError(f"{path} has unknown format {raw['format']!r}")
            keyring = cls(
                master_keys={int(v): _unb64(k) for v, k in raw["master_keys"].items()},
                active_version=int(raw["active_version"]),
                blind_index_key=_unb64(raw["blind_index_key"]),
                signing_keys=[_unb64(k) for k in raw["signing_keys"]],
                path=path,
                rotated_at=(
                    dt.datetime.fromisoformat(raw["rotated_at"]) if raw.get("rotated_at") else None
                ),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise KeyringError(
                f"{path} is not a Leadvault key ring (missing or bad keys)"
            ) from None
        if keyring.active_version not in keyring.master_keys or not keyring.signing_keys:
            raise KeyringError(f"{path} names an active master key it does not hold")
        if any(len(k) != _KEY_BYTES for k in keyring.master_keys.values()):
            raise KeyringError(f"{path} holds a master key that is not 256 bits")
        return keyring

    @classmethod
    def load_or_create(cls, path: Path) -> tuple[Keyring, bool]:
        """Load the key ring, creating it (mode 0600) on first start."""
        if path.exists():
            return cls.load(path), False
        keyring = cls.generate()
        keyring.save(path)
        return keyring, True

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": KEYRING_FORMAT,
                "active_version": self.active_version,
                "master_keys": {str(v): _b64(k) for v, k in sorted(self.master_keys.items())},
                "blind_index_key": _b64(self.blind_index_key),
                "signing_keys": [_b64(k) for k in self.signing_keys],
                **({"rotated_at": self.rotated_at.isoformat()} if self.rotated_at else {}),
            },
            indent=2,
        )

    def save(self, path: Path | None = None) -> None:
        """Write atomically with mode 0600 (never briefly world-readable)."""
        path = path or self.path
        if path is None:
            raise KeyringError("no path to save the key ring to")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".keyring-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp_name).replace(path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                Path(tmp_name).unlink()
            raise
        self.path = path

    def add_master_version(self) -> int:
        version = max(self.master_keys) + 1
        self.master_keys[version] = AESGCM.generate_key(bit_length=256)
        self.active_version = version
        self.rotated_at = clock.now()
        return version

    def retire_master_version(self, version: int) -> None:
        if version == self.active_version:
            raise KeyringError(f"version {version} is the active master key")
        if version not in self.master_keys:
            raise KeyringError(f"the key ring holds no master key version {version}")
        del self.master_keys[version]


# --- data keys and fields -------------------------------------------------


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    return _open_with(AESGCM(key), sealed, aad)


def _open_with(aead: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    """Open ``nonce + ciphertext`` with a cipher already built (the one place that
    says what a short or forged value is)."""
    if len(sealed) < _NONCE_BYTES + 16:
        raise DecryptionError("ciphertext too short")
    try:
        return aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], aad)
    except InvalidTag:
        raise DecryptionError("ciphertext does not match its key or context") from None


def _open_fields(
    aead: AESGCM, prefix: bytes, fields: Iterable[bytes], sealed: Iterable[bytes | None]
) -> list[str | None]:
    """Several fields of one owner (``prefix``: the owner's part of their associated
    data); None stays None. :func:`_open_with` written out in the loop: a call per
    field costs a bulk export ~10 % of its decryption."""
    opened: list[str | None] = []
    for field, value in zip(fields, sealed, strict=True):
        if value is None:
            opened.append(None)
            continue
        if len(value) < _NONCE_BYTES + 16:
            raise DecryptionError("ciphertext too short")
        try:
            plain = aead.decrypt(value[:_NONCE_BYTES], value[_NONCE_BYTES:], prefix + field)
        except InvalidTag:
            raise DecryptionError("ciphertext does not match its key or context") from None
        opened.append(plain.decode("utf-8"))
    return opened


def _key_aad(owner: uuid.UUID | str) -> bytes:
    return f"leadvault/data-key/{owner}".encode()


def _field_aad(owner: uuid.UUID | str, field: str) -> bytes:
    return f"leadvault/field/{owner}/{field}".encode()


@dataclass(frozen=True)
class WrappedKey:
    wrapped: bytes
    version: int


class DataKey:
    """An unwrapped per-lead data key bound to its owner's id."""

    __slots__ = ("_aead", "_key", "_prefix", "owner")

    def __init__(self, key: bytes, owner: uuid.UUID | str) -> None:
        self._key = key
        self.owner = owner
        # Made on first use and kept: building the cipher and the owner's part of the
        # associated data cost more than decrypting a field (bulk exports read many).
        self._aead: AESGCM | None = None
        self._prefix = b""

    def _cipher(self) -> tuple[AESGCM, bytes]:
        if self._aead is None:
            self._aead = AESGCM(self._key)
            self._prefix = _field_aad(self.owner, "")
        return self._aead, self._prefix

    def encrypt(self, field: str, value: str) -> bytes:
        aead, prefix = self._cipher()
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + aead.encrypt(nonce, value.encode("utf-8"), prefix + field.encode())

    def decrypt(self, field: str, sealed: bytes) -> str:
        aead, prefix = self._cipher()
        return _open_with(aead, sealed, prefix + field.encode()).decode("utf-8")

    def decrypt_many(self, sealed: Sequence[tuple[str, bytes | None]]) -> list[str | None]:
        """Open several fields of this key's owner at once (bulk exports read every
        field of every lead: one call instead of one per field); None stays None."""
        aead, prefix = self._cipher()
        return _open_fields(
            aead, prefix, [field.encode() for field, _ in sealed], [value for _, value in sealed]
        )

    def encrypt_json(self, field: str, value: Any) -> bytes:
        return self.encrypt(field, _SEALED_JSON.encode(value))

    def decrypt_json(self, field: str, sealed: bytes) -> Any:
        return json.loads(self.decrypt(field, sealed))


class Vault:
    """Field encryption, blind index and token signing under one key ring."""

    # How often a process looks whether another one rotated the key ring file.
    REFRESH_SECONDS = 5.0

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._checked_at = time.monotonic()
        self._file_stamp = self._stamp()
        # Master key ciphers by version, rebuilt when the key ring holds another key.
        self._masters: dict[int, tuple[bytes, AESGCM]] = {}
        self._signers: dict[tuple[str, tuple[bytes, ...]], _TokenSigner] = {}

    def _master(self, version: int, key: bytes) -> AESGCM:
        cached = self._masters.get(version)
        if cached is None or cached[0] is not key:
            cached = self._masters[version] = (key, AESGCM(key))
        return cached[1]

    # data keys
    def new_data_key(self, owner: uuid.UUID | str) -> tuple[DataKey, WrappedKey]:
        raw = AESGCM.generate_key(bit_length=256)
        return DataKey(raw, owner), self.wrap(raw, owner)

    def _stamp(self) -> tuple[int, int] | None:
        path = self.keyring.path
        if path is None:
            return None
        try:
            info = path.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_ino)

    def refresh(self, *, force: bool = False) -> None:
        """Reload the key ring when its file changed (the worker rotated it): every
        process wraps new data keys under the active version, and forgets retired ones.
        Looks at the file at most every REFRESH_SECONDS unless ``force``."""
        now = time.monotonic()
        if not force and now - self._checked_at < self.REFRESH_SECONDS:
            return
        self._checked_at = now
        stamp = self._stamp()
        if stamp is not None and stamp != self._file_stamp and self.keyring.path is not None:
            self.keyring = Keyring.load(self.keyring.path)
            self._file_stamp = stamp

    def wrap(self, raw: bytes, owner: uuid.UUID | str) -> WrappedKey:
        self.refresh()
        version = self.keyring.active_version
        master = self.keyring.master_keys[version]
        return WrappedKey(_seal(master, raw, _key_aad(owner)), version)

    def unwrap(self, wrapped: WrappedKey, owner: uuid.UUID | str) -> DataKey:
        return self.unwrap_stored(wrapped.wrapped, wrapped.version, owner)

    def unwrap_stored(self, sealed: bytes, version: int, owner: uuid.UUID | str) -> DataKey:
        """``unwrap`` from the two stored columns (bulk reads skip building a WrappedKey)."""
        master = self.keyring.master_keys.get(version)
        if master is None and self.keyring.path is not None:
            # `leadvault keys rotate` ran in another process: pick up the new version.
            self.keyring = Keyring.load(self.keyring.path)
            master = self.keyring.master_keys.get(version)
        if master is None:
            raise DecryptionError(f"master key version {version} is not in the key ring")
        return DataKey(_open_with(self._master(version, master), sealed, _key_aad(owner)), owner)

    def open_fields(
        self,
        sealed_key: bytes,
        version: int,
        owner: str,
        fields: Sequence[bytes],
        sealed: Sequence[bytes | None],
    ) -> list[str | None]:
        """Unwrap a lead's data key (the two stored columns) and open several of its
        fields at once: ``fields`` their names (encoded), ``sealed`` their stored
        values (None stays None). What ``unwrap_stored(...).decrypt_many(...)`` does,
        for bulk reads (an export opens every field of every lead), without a DataKey
        and its per-field calls."""
        owner_aad = owner.encode()
        aead = AESGCM(self._unwrap_raw(sealed_key, version, owner, owner_aad))
        return _open_fields(aead, b"leadvault/field/" + owner_aad + b"/", fields, sealed)

    def _unwrap_raw(self, sealed: bytes, version: int, owner: str, owner_aad: bytes) -> bytes:
        master = self.keyring.master_keys.get(version)
        if master is None:
            return self.unwrap_stored(sealed, version, owner)._key
        return _open_with(self._master(version, master), sealed, b"leadvault/data-key/" + owner_aad)

    def rewrap(self, wrapped: WrappedKey, owner: uuid.UUID | str) -> WrappedKey:
        data_key = self.unwrap(wrapped, owner)
        return self.wrap(data_key._key, owner)

    # blind index
    def blind_index(self, email: str) -> bytes:
        return self.blind_index_of_form(normalise_email(email))

    def blind_index_of_form(self, form: str) -> bytes:
        """The blind index of an address already in ``normalise_email``'s form."""
        return hmac.new(self.keyring.blind_index_key, form.encode("utf-8"), hashlib.sha256).digest()

    def keyed_hash(self, purpose: str, value: str) -> str:
        """A pseudonym for request metadata (user agents); not reversible without the key."""
        return hmac.new(
            self.keyring.blind_index_key, f"{purpose}\x00{value}".encode(), hashlib.sha256
        ).hexdigest()

    # signed tokens
    def _signer(self, purpose: str) -> _TokenSigner:
        # itsdangerous signs with the last key and verifies with every key. Built once
        # per purpose and set of signing keys (building one costs more than signing),
        # so a rotated key ring gets its own.
        keys = tuple(self.keyring.signing_keys)
        signer = self._signers.get((purpose, keys))
        if signer is None:
            signer = self._signers[(purpose, keys)] = _TokenSigner(
                URLSafeTimedSerializer(
                    secret_key=list(keys),
                    salt=f"leadvault.{purpose}",
                    signer=ClockSigner,
                    # The default digest (SHA-1) as OpenSSL's: the same MACs, and an HMAC
                    # that _TokenSigner can copy.
                    signer_kwargs={"digest_method": hashlib.sha1},
                )
            )
        return signer

    def sign(self, purpose: str, payload: Any) -> str:
        return self._signer(purpose).sign(payload)

    def unsign(self, purpose: str, token: str, max_age_seconds: float | None) -> Any:
        serializer = self._signer(purpose).serializer
        try:
            return serializer.loads(token, max_age=max_age_seconds)
        except SignatureExpired as exc:
            try:
                payload = serializer.loads(token)
            except BadSignature:
                payload = None
            raise TokenExpired(payload) from exc
        except BadSignature:
            raise TokenInvalid(f"not a valid {purpose} token") from None

    def short_tag(self, purpose: str, value: str, *, length: int = 16) -> str:
        """A short lower-case hex MAC of ``value`` (fits where a token cannot, e.g. the
        local part of a VERP return address); made with the newest signing key."""
        return self._tag(self.keyring.signing_keys[-1], purpose, value)[:length]

    def check_short_tag(self, purpose: str, value: str, tag: str) -> bool:
        """Whether ``tag`` is ``short_tag(purpose, value)`` under any signing key."""
        tag = tag.lower()
        return len(tag) >= 12 and any(
            hmac.compare_digest(self._tag(key, purpose, value)[: len(tag)], tag)
            for key in self.keyring.signing_keys
        )

    @staticmethod
    def _tag(key: bytes, purpose: str, value: str) -> str:
        message = f"leadvault.{purpose}\x00{value}".encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()

    @property
    def session_secret(self) -> bytes:
        """Flask's cookie secret, derived so it is never the same key as a token key."""
        return hmac.new(self.keyring.signing_keys[-1], b"flask-session", hashlib.sha256).digest()


class ClockSigner(TimestampSigner):
    """itsdangerous' timestamped signer on ``leadvault.clock``: a token's age is
    measured on the same clock as everything else (and tests freeze it)."""

    def get_timestamp(self) -> int:
        return int(clock.now().timestamp())


class _TokenSigner:
    """One purpose's tokens under one set of signing keys: verified by its itsdangerous
    serializer (with every key), signed as its ``dumps`` signs them with the HMAC of the
    newest key derived once (itsdangerous derives it again for every token, and builds a
    signer for it: more than half of signing an opt-in link)."""

    __slots__ = ("_clock", "_mac", "serializer")

    def __init__(self, serializer: URLSafeTimedSerializer) -> None:
        self.serializer = serializer
        signer = serializer.make_signer()
        self._clock = signer
        self._mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method)

    def sign(self, payload: Any) -> str:
        """``serializer.dumps(payload)``: the payload (compact JSON, compressed when that is
        shorter, base64), its time stamp and the MAC of both, joined by dots
        (``TimestampSigner.sign``; tests/test_crypto.py compares the two)."""
        value = b"%s.%s" % (
            _dump_payload(payload),
            base64_encode(int_to_bytes(self._clock.get_timestamp())),
        )
        mac = self._mac.copy()
        mac.update(value)
        return (b"%s.%s" % (value, base64_encode(mac.digest()))).decode("ascii")


# What ``encrypt_json`` seals: ``json.dumps(value, separators=(",", ":"), sort_keys=True)``,
# its encoder made once (``json.dumps`` with arguments builds one per call; the worker
# seals several values a lead, an opt-in mail among them).
_SEALED_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True)

# itsdangerous' compact JSON (``_CompactJSON.dumps``: no spaces, not ASCII-only), its
# encoder made once: ``json.dumps`` with these arguments builds one per call.
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _dump_payload(payload: Any) -> bytes:
    """``URLSafeTimedSerializer.dump_payload`` for the default serializer, as
    ``_TokenSigner`` builds it: compact JSON, zlib-compressed when that is at least two
    bytes shorter (then marked by a leading dot), URL-safe base64 without padding."""
    data = _COMPACT_JSON.encode(payload).encode("utf-8")
    compressed = zlib.compress(data)
    if len(compressed) < len(data) - 1:
        return b"." + base64_encode(compressed)
    return base64_encode(data)


def payload_id(payload: Any, key: str) -> uuid.UUID:
    """The UUID a token payload holds under ``key``; TokenInvalid when it holds none."""
    value = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(value, str):
        raise TokenInvalid(f"token payload has no {key!r}")
    try:
        return uuid.UUID(hex=value)
    except ValueError:
        raise TokenInvalid(f"token payload {key!r} is not an id") from None


def normalise_email(email: str) -> str:
    """The form of an address the blind index is computed over (``addresses.index_form``)."""
    return addresses.index_form(email)


def sha256_hex(data: str | bytes) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def truncate_ip(address: str | None) -> str | None:
    """Keep the network, drop the host: /24 for IPv4, /48 for IPv6."""
    if not address:
        return None
    text = address.strip()
    # A dotted quad as ipaddress writes it (the usual case: every lead's ledger entry)
    # keeps its first three numbers; anything else is parsed (and None when invalid).
    plain = _PLAIN_V4.fullmatch(text)
    if plain is not None:
        return f"{plain[1]}0"
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    # The network address by an integer mask: the string ip_network(...).network_address
    # gives, without building the network (the worker truncates every lead's address).
    if ip.version == 4:
        return str(ipaddress.IPv4Address(int(ip) & _V4_NETWORK))
    return str(ipaddress.IPv6Address(int(ip) & _V6_NETWORK))


_V4_NETWORK = ((1 << 24) - 1) << 8  # /24
# Four numbers 0-255 in ASCII digits without leading zeros, as ipaddress accepts and
# writes them: the /24 is the first three and a dot, then 0.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_PLAIN_V4 = re.compile(rf"((?:{_OCTET}\.){{3}}){_OCTET}")
_V6_NETWORK = ((1 << 48) - 1) << 80  # /48


def random_token(nbytes: int = 16) -> str:
    return secrets.token_urlsafe(nbytes)


def public_id() -> str:
    """A random id people type on the command line (forms, assets): never starting
    with "-", which click would take for an option (`leadvault assets archive -abc`)."""
    while (token := random_token(12)).startswith("-"):
        pass
    return token


def constant_time_equal(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())
