"""Identity: people with roles and their API tokens, device enrolment and device tokens, web sessions.

A token is ``hop_<lookup>.<secret>``: ``lookup`` finds its row, and only an argon2 hash of the whole token is
stored, so a copy of the database yields no usable credential. The bootstrap admin token (``rest.auth``, a
0600 file under HOPPER_HOME) is not in the store; it is checked by constant-time comparison and always maps to
the person ``admin``. Web sessions are rows too: the browser's cookie carries a random id whose sha256 is the
row's key, so logging out, revoking a person or rotating a token ends every copy of the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hopper.engine.entities import EnrolledDevice, Principal, Role, UserInfo
from hopper.engine.errors import ValidationError
from hopper.engine.services._base import ServiceContext, default_actor
from hopper.engine.store.models import utcnow

TOKEN_PREFIX = "hop_"
SESSION_HOURS = 12
BOOTSTRAP_ADMIN = "admin"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
# Tokens carry 256 random bits, so the hash only has to make a stolen database useless, not slow down a
# dictionary attack: argon2id at a cost that verifies in milliseconds keeps every API request cheap.
_HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


def fingerprint(token: str) -> str:
    """A stable, non-reversible name for a token (sessions remember which admin token opened them)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    lookup = secrets.token_hex(8)
    return lookup, f"{TOKEN_PREFIX}{lookup}.{secrets.token_urlsafe(32)}"


class IdentityServices(ServiceContext):
    """Who is calling, and the administration of people, devices' credentials and web sessions."""

    _verified: dict[str, int] = {}  # sha256(token) -> credential id, for tokens argon2 already accepted
    _lock = threading.Lock()

    # -- people --------------------------------------------------------------------------------------------
    def add_user(self, name: str, role: str, *, actor: str | None = None) -> tuple[UserInfo, str]:
        """A new person with a role; returns them and their token, which is shown this once and never stored."""
        self._check_name(name)
        if role not in Role.PEOPLE:
            raise ValidationError(f"role must be one of {', '.join(Role.PEOPLE)}, not {role!r}", field="role")
        lookup, token = _new_token()
        info = self.store.identity.add_user(name, role, lookup=lookup, secret_hash=_HASHER.hash(token),
                                            actor=actor or default_actor())
        return info, token

    def rotate_user_token(self, name: str, *, actor: str | None = None) -> tuple[UserInfo, str]:
        """Replace a person's token: the old one and every web session opened with it stop working."""
        lookup, token = _new_token()
        info = self.store.identity.rotate_user_token(name, lookup=lookup, secret_hash=_HASHER.hash(token),
                                                     actor=actor or default_actor())
        return info, token

    def revoke_user(self, name: str, *, actor: str | None = None) -> UserInfo:
        """Take a person's access away: tokens revoked, web sessions ended, at once."""
        return self.store.identity.revoke_user(name, actor=actor or default_actor())

    def list_users(self) -> list[UserInfo]:
        """Everyone with a role (revoked people too, with when)."""
        return self.store.identity.list_users()

    # -- devices ---------------------------------------------------------------------------------------------
    def create_enrolment_token(self, *, actor: str | None = None) -> str:
        """A one-time token an edge agent registers with; it receives its own device token in exchange."""
        lookup, token = _new_token()
        self.store.identity.add_enrolment_token(lookup=lookup, secret_hash=_HASHER.hash(token),
                                                actor=actor or default_actor())
        return token

    def enrol_device(self, principal: Principal, name: str, *, hardware: dict | None, interpreter: str) -> EnrolledDevice:
        """Register a device with an enrolment token (spent here); the answer carries the device token once."""
        self._check_name(name)
        if principal.role != Role.ENROL or principal.credential_id is None:
            raise ValidationError("enrolling needs an enrolment token (`hopper device enrol-token`)", field="token")
        lookup, token = _new_token()
        offline = self.settings.edge_offline_seconds
        device = self.store.identity.enrol_device(principal.credential_id, name, hardware=hardware or {},
                                                  interpreter=interpreter, lookup=lookup,
                                                  secret_hash=_HASHER.hash(token), offline_after=offline)
        return EnrolledDevice(device, token)

    def device_holds_export(self, device_id: int, export_id: int) -> bool:
        """Whether a device holds a running job of the export (the only exports it may download)."""
        return self.store.identity.device_holds_export(device_id, export_id)

    def device_holds_job(self, device_id: int, job_id: int) -> bool:
        """Whether a device holds a profiling job now (the only jobs it may complete, fail or release)."""
        return self.store.identity.device_holds_job(device_id, job_id)

    # -- authentication -----------------------------------------------------------------------------------------
    def authenticate(self, token: str, *, admin_token: str | None) -> Principal | None:
        """The principal a bearer token stands for, or None when it is unknown, wrong, revoked or spent."""
        token = token.strip()
        if admin_token is not None and hmac.compare_digest(token.encode(), admin_token.encode()):
            return Principal(BOOTSTRAP_ADMIN, Role.ADMIN)
        if not token.startswith(TOKEN_PREFIX) or "." not in token or len(token) > 200:
            return None
        lookup = token[len(TOKEN_PREFIX):].split(".", 1)[0]
        record = self.store.identity.credential(lookup)
        if record is None or not record.active:
            return None
        digest = fingerprint(token)
        with self._lock:
            known = self._verified.get(digest) == record.id
        if not known:
            try:
                _HASHER.verify(record.secret_hash, token)
            except (VerificationError, InvalidHashError):
                return None
            with self._lock:
                if len(self._verified) > 10_000:
                    self._verified.clear()
                self._verified[digest] = record.id
        if record.kind == "user":
            return Principal(record.user_name or "?", record.user_role or Role.VIEWER, record.id)
        if record.kind == "device":
            return Principal(f"device:{record.device_name}", Role.DEVICE, record.id, record.device_id)
        return Principal(f"enrol:{record.id}", Role.ENROL, record.id)

    # -- web sessions ---------------------------------------------------------------------------------------------
    def open_session(self, principal: Principal, *, admin_token: str | None) -> str:
        """A server-side session for a person who logged in; returns the id the cookie carries."""
        if principal.role not in Role.PEOPLE:
            raise ValidationError("only people log in to the UI: use a user token or the admin token",
                                  field="token")
        session_id = secrets.token_urlsafe(32)
        admin_fp = fingerprint(admin_token) if principal.credential_id is None and admin_token else None
        self.store.identity.open_session(fingerprint(session_id), principal,
                                         expires_at=utcnow() + timedelta(hours=SESSION_HOURS),
                                         admin_fingerprint=admin_fp)
        return session_id

    def session_principal(self, session_id: str, *, admin_token: str | None) -> Principal | None:
        """Who a cookie's session belongs to, or None when it was closed, expired or its token revoked."""
        return self.store.identity.session_principal(
            fingerprint(session_id), admin_fingerprint=fingerprint(admin_token) if admin_token else None)

    def close_session(self, session_id: str) -> bool:
        """Log out: delete the session row."""
        return self.store.identity.close_session(fingerprint(session_id))

    def close_admin_sessions(self, *, keep_token: str | None = None, actor: str | None = None) -> int:
        """End the sessions opened with an earlier bootstrap admin token (after ``hopper token --rotate``)."""
        return self.store.identity.close_admin_sessions(
            keep_fingerprint=fingerprint(keep_token) if keep_token else None, actor=actor or default_actor())

    @staticmethod
    def _check_name(name: str) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValidationError("a name is 1-100 letters, digits, '_', '.', '@' or '-', starting with a letter "
                                  "or digit", field="name")
        if name == BOOTSTRAP_ADMIN:
            raise ValidationError(f"{name!r} is the bootstrap admin's name; pick another", field="name")
