"""Staff's second factor: codes from an authenticator app (TOTP, RFC 6238), each accepted
once, and the instance-wide rule that every sign-in needs one.

Plain functions taking a session; they flush, never commit. Every change is an
audit entry (``actor`` names who made it). The accounts are ``admin.accounts``'.
"""

from __future__ import annotations

import pyotp
from sqlalchemy.orm import Session

from admin.accounts import data_key, email_of, end_sessions
from admin.models import AdminSetting, User
from leadvault import audit, clock
from leadvault.crypto import constant_time_equal

TOTP_REQUIRED = "totp_required"


def totp_required(session: Session) -> bool:
    row = session.get(AdminSetting, TOTP_REQUIRED)
    return row is not None and row.value == "true"


def require_totp(session: Session, required: bool, *, actor: str, ip: str | None = None) -> None:
    row = session.get(AdminSetting, TOTP_REQUIRED)
    if row is None:
        row = AdminSetting(key=TOTP_REQUIRED, value="false")
        session.add(row)
    row.value = "true" if required else "false"
    row.updated_at = clock.now()
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=audit.Action.TOTP_REQUIRED,
        object_type=audit.ObjectType.SETTING,
        object_id=TOTP_REQUIRED,
        detail={"required": required},
        ip=ip,
    )


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(session: Session, user: User, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(
        name=email_of(session, user), issuer_name="Leadvault"
    )


def _totp_secret(session: Session, user: User) -> str | None:
    if user.totp_secret is None:
        return None
    return data_key(session, user).decrypt(f"totp/{user.payload_owner}", user.totp_secret)


def _matching_step(secret: str, code: str, after: int | None) -> int | None:
    """The time step (±1 for clock drift) whose code is ``code``, if later than ``after``."""
    code = "".join(code.split())
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    now = clock.now()
    step = totp.timecode(now)
    for candidate in (step - 1, step, step + 1):
        if after is not None and candidate <= after:
            continue
        if constant_time_equal(totp.generate_otp(candidate), code):
            return candidate
    return None


def enable_totp(
    session: Session, user: User, secret: str, code: str, *, actor: str, ip: str | None = None
) -> bool:
    """Store ``secret`` once ``code`` proves the authenticator app has it."""
    step = _matching_step(secret, code, None)
    if step is None:
        return False
    user.totp_secret = data_key(session, user).encrypt(f"totp/{user.payload_owner}", secret)
    user.totp_last_step = step
    audit.record(
        session,
        actor=actor,
        action=audit.Action.TOTP_ENABLED,
        object_type=audit.ObjectType.USER,
        object_id=user.id,
        ip=ip,
    )
    return True


def check_totp(session: Session, user: User, code: str) -> bool:
    """Whether ``code`` is the account's current code (each code is accepted once)."""
    secret = _totp_secret(session, user)
    if secret is None:
        return False
    step = _matching_step(secret, code, user.totp_last_step)
    if step is None:
        return False
    user.totp_last_step = step
    return True


def remove_totp(session: Session, user: User, *, actor: str, ip: str | None = None) -> None:
    user.totp_secret = None
    user.totp_last_step = None
    end_sessions(session, user)
    audit.record(
        session,
        actor=actor,
        action=audit.Action.TOTP_REMOVED,
        object_type=audit.ObjectType.USER,
        object_id=user.id,
        ip=ip,
    )
