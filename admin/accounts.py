"""Staff accounts: create, find, passwords (argon2id), disable, roles (the second
factor, TOTP: ``admin.two_factor``).

Plain functions taking a session; they flush, never commit. Every change of
an account is an audit entry (``actor`` names who made it).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from admin.models import Role, StaffSession, User
from leadvault import audit, clock, sealed
from leadvault.crypto import WrappedKey, constant_time_equal, normalise_email, random_token
from leadvault.db import settings_of, vault_of

PASSWORD_MIN = 12
PASSWORD_MAX = 1024
SET_PASSWORD = "staff-set-password"  # signing purpose of set-password links
_FIELD = "staff-user"


class AccountError(ValueError):
    """A request the service refuses; the message is for the person (no personal data)."""


@functools.cache
def hasher() -> PasswordHasher:
    """argon2id with the library's (RFC 9106 low-memory) defaults."""
    return PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    # Unknown and disabled accounts cost the same verification as real ones.
    return hasher().hash(random_token(16))


# --- the address ---------------------------------------------------------------


def find(session: Session, email: str) -> User | None:
    index = vault_of(session).blind_index(email)
    return session.scalars(sa.select(User).where(User.email_index == index)).one_or_none()


def email_of(session: Session, user: User) -> str:
    payload = sealed.unseal(
        vault_of(session),
        _FIELD,
        sealed.SealedPayload(
            user.payload_owner, user.payload, user.payload_key, user.payload_key_version
        ),
    )
    return str(payload["email"])


def data_key(session: Session, user: User) -> Any:
    return vault_of(session).unwrap(
        WrappedKey(user.payload_key, user.payload_key_version), user.payload_owner
    )


# --- create, roles, disable ------------------------------------------------------


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise AccountError(f"unknown role {role!r}; roles are {names}") from None


def create(
    session: Session,
    email: str,
    role: str,
    *,
    actor: str,
    salesperson_id: int | None = None,
    ip: str | None = None,
) -> User:
    """A new account without a password; :func:`setup_link` makes its set-password link."""
    from email_validator import EmailNotValidError, validate_email

    try:
        address = validate_email(email.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        raise AccountError("this is not a valid e-mail address") from None
    chosen = _role(role)
    if chosen == Role.SALES and salesperson_id is None:
        raise AccountError("a sales account needs the salesperson it works as (--salesperson)")
    _check_salesperson(session, salesperson_id)
    if find(session, address) is not None:
        raise AccountError("an account with this address exists already")
    box = sealed.seal(vault_of(session), _FIELD, {"email": normalise_email(address)})
    user = User(
        email_index=vault_of(session).blind_index(address),
        payload=box.payload,
        payload_owner=box.owner,
        payload_key=box.key,
        payload_key_version=box.key_version,
        role=chosen,
        salesperson_id=salesperson_id,
        created_at=clock.now(),
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=audit.Action.USER_CREATED,
        object_type=audit.ObjectType.USER,
        object_id=user.id,
        detail={"role": chosen.value},
        ip=ip,
    )
    return user


def _check_salesperson(session: Session, salesperson_id: int | None) -> None:
    """An account works as a salesperson who exists: an unknown id failed the foreign key
    at the flush (a 500 in the console, a traceback on the command line)."""
    from scoring.models import Salesperson

    if salesperson_id is not None and session.get(Salesperson, salesperson_id) is None:
        raise AccountError("there is no salesperson with this id")


def setup_link(session: Session, user: User) -> str:
    """A one-time link to set the password (replaces any earlier one)."""
    user.setup_nonce = random_token(16)
    session.flush()
    token = vault_of(session).sign(SET_PASSWORD, {"u": user.id, "n": user.setup_nonce})
    return f"{settings_of(session).base_url}/admin/set-password/{token}"


def user_of_setup_token(session: Session, token: str) -> User:
    """The account a set-password link is for; raises TokenInvalid/TokenExpired or
    AccountError (used or replaced)."""
    hours = settings_of(session).admin_set_password_hours
    payload = vault_of(session).unsign(SET_PASSWORD, token, max_age_seconds=hours * 3600)
    if not isinstance(payload, dict):
        raise AccountError("not a set-password link")
    user = session.get(User, payload.get("u"))
    nonce = payload.get("n")
    if (
        user is None
        or not user.active
        or not user.setup_nonce
        or not isinstance(nonce, str)
        or not constant_time_equal(user.setup_nonce, nonce)
    ):
        raise AccountError("this link was used or replaced by a newer one")
    return user


def check_new_password(password: str) -> str | None:
    """Why ``password`` is refused (an English message id), or None."""
    if len(password) < PASSWORD_MIN:
        return "Please choose a password of at least 12 characters."
    if len(password) > PASSWORD_MAX:
        return "Please choose a password of at most 1024 characters."
    return None


def set_password(
    session: Session, user: User, password: str, *, actor: str, ip: str | None = None
) -> None:
    """Set the password, spend the set-password link and end every sign-in."""
    problem = check_new_password(password)
    if problem:
        raise AccountError(problem)
    user.password_hash = hasher().hash(password)
    user.password_changed_at = clock.now()
    user.setup_nonce = None
    end_sessions(session, user)
    audit.record(
        session,
        actor=actor,
        action=audit.Action.PASSWORD_CHANGED,
        object_type=audit.ObjectType.USER,
        object_id=user.id,
        ip=ip,
    )


def verify_password(session: Session, email: str, password: str) -> User | None:
    """The active account with this address and password, else None, at the same cost."""
    user = find(session, email) if email.strip() else None
    usable = user is not None and user.active and user.password_hash
    stored = user.password_hash if usable and user is not None else _dummy_hash()
    try:
        hasher().verify(stored or _dummy_hash(), password[:PASSWORD_MAX])
    except (VerificationError, InvalidHashError):
        return None
    if not usable or user is None:
        return None
    if hasher().check_needs_rehash(stored or ""):
        user.password_hash = hasher().hash(password)
    return user


def end_sessions(session: Session, user: User, *, keep: str | None = None) -> int:
    """Sign the account out everywhere (but the session ``keep``)."""
    query = sa.delete(StaffSession).where(StaffSession.user_id == user.id)
    if keep is not None:
        query = query.where(StaffSession.id != keep)
    result = session.execute(query)
    session.expire(user, ["sessions"])
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _active_owners(session: Session) -> int:
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(User)
            .where(User.role == Role.OWNER, User.disabled_at.is_(None))
        )
        or 0
    )


def change_role(
    session: Session,
    user: User,
    role: str,
    *,
    actor: str,
    salesperson_id: int | None = None,
    ip: str | None = None,
) -> None:
    chosen = _role(role)
    if user.role == Role.OWNER and chosen != Role.OWNER and _active_owners(session) <= 1:
        raise AccountError("this is the last owner; make another account owner first")
    if chosen == Role.SALES and (salesperson_id or user.salesperson_id) is None:
        raise AccountError("a sales account needs the salesperson it works as (--salesperson)")
    _check_salesperson(session, salesperson_id)
    before = user.role
    user.role = chosen
    if salesperson_id is not None:
        user.salesperson_id = salesperson_id
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=audit.Action.USER_ROLE_CHANGED,
        object_type=audit.ObjectType.USER,
        object_id=user.id,
        detail={"from": before, "to": chosen.value},
        ip=ip,
    )


def disable(session: Session, user: User, *, actor: str, ip: str | None = None) -> None:
    """No more sign-ins, sessions or API tokens for this account."""
    if user.role == Role.OWNER and user.active and _active_owners(session) <= 1:
        raise AccountError("this is the last owner; make another account owner first")
    user.disabled_at = clock.now()
    user.setup_nonce = None
    end_sessions(session, user)  # API tokens of a disabled account stop working too
    audit.record(
        session,
        actor=actor,
        action=audit.Action.USER_DISABLED,
        object_type=audit.ObjectType.USER,
        object_id=user.id,
        ip=ip,
    )


def reset_password(session: Session, user: User, *, actor: str, ip: str | None = None) -> str:
    """Clear the password, end every sign-in, and return a new set-password link."""
    user.password_hash = None
    end_sessions(session, user)
    audit.record(
        session,
        actor=actor,
        action=audit.Action.USER_PASSWORD_RESET,
        object_type=audit.ObjectType.USER,
        object_id=user.id,
        ip=ip,
    )
    return setup_link(session, user)


# --- listing ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Account:
    id: int
    email: str
    role: str
    state: str  # active, disabled, invited (no password yet)
    totp: bool
    last_login_at: Any
    salesperson_id: int | None


def listing(session: Session) -> list[Account]:
    rows = session.scalars(sa.select(User).order_by(User.id)).all()
    return [
        Account(
            id=user.id,
            email=email_of(session, user),
            role=user.role,
            state=(
                "disabled" if not user.active else ("active" if user.password_hash else "invited")
            ),
            totp=user.totp_secret is not None,
            last_login_at=user.last_login_at,
            salesperson_id=user.salesperson_id,
        )
        for user in rows
    ]


def has_owner(session: Session) -> bool:
    return _active_owners(session) > 0
