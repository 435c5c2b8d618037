"""People, devices' and people's tokens, enrolment and web sessions in SQL.

Tokens arrive here already hashed (argon2, by ``engine.services.identity``): the store never sees a secret.
Each method is one transaction, so consuming an enrolment token and issuing the device token commit together,
and revoking a token ends its web sessions in the same write.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, or_, select, update

from hopper.engine.entities import CredentialRecord, DeviceInfo, Principal, UserInfo
from hopper.engine.errors import Conflict, NotFound
from hopper.engine.status import DeviceStatus, JobStatus
from hopper.engine.store._common import MAX_ID, Repository, add_event
from hopper.engine.store.edge import device_info
from hopper.engine.store.models import CredentialRow, DeviceRow, ProfileJobRow, UserRow, WebSessionRow, utcnow

USER, DEVICE, ENROL = "user", "device", "enrol"  # credential kinds


class IdentityStore(Repository):
    # -- people ------------------------------------------------------------------------------------------
    def add_user(self, name: str, role: str, *, lookup: str, secret_hash: str, actor: str) -> UserInfo:
        """A new person with their first token; a revoked person of the same name is re-activated."""
        with self._session() as session:
            row = session.scalar(select(UserRow).where(UserRow.name == name))
            if row is not None and row.revoked_at is None:
                raise Conflict(f"user {name!r} already exists: `hopper user revoke {name}` first, or pick another "
                               "name", field="name")
            if row is None:
                row = UserRow(name=name, role=role, created_at=utcnow())
                session.add(row)
            else:
                row.role, row.revoked_at = role, None
            session.flush()
            session.add(CredentialRow(kind=USER, lookup=lookup, secret_hash=secret_hash, user_id=row.id,
                                      created_by=actor, created_at=utcnow()))
            add_event(session, actor, "add_user", "user", row.id, after={"name": name, "role": role})
            session.flush()
            return self._user_info(session, row)

    def rotate_user_token(self, name: str, *, lookup: str, secret_hash: str, actor: str) -> UserInfo:
        """Revoke a person's tokens (and so their web sessions) and give them a new one."""
        with self._session() as session:
            row = self._active_user(session, name)
            self._revoke_credentials(session, CredentialRow.user_id == row.id)
            session.add(CredentialRow(kind=USER, lookup=lookup, secret_hash=secret_hash, user_id=row.id,
                                      created_by=actor, created_at=utcnow()))
            add_event(session, actor, "rotate_user_token", "user", row.id, after={"name": name})
            session.flush()
            return self._user_info(session, row)

    def revoke_user(self, name: str, *, actor: str) -> UserInfo:
        """The person can no longer sign in: their tokens are revoked and their web sessions deleted."""
        with self._session() as session:
            row = self._active_user(session, name)
            row.revoked_at = utcnow()
            self._revoke_credentials(session, CredentialRow.user_id == row.id)
            add_event(session, actor, "revoke_user", "user", row.id, before={"name": name, "role": row.role})
            session.flush()
            return self._user_info(session, row)

    def list_users(self) -> list[UserInfo]:
        with self._session() as session:
            return [self._user_info(session, r) for r in session.scalars(select(UserRow).order_by(UserRow.id))]

    # -- tokens ------------------------------------------------------------------------------------------
    def credential(self, lookup: str) -> CredentialRecord | None:
        """The token whose public part is ``lookup`` (None when there is none)."""
        with self._session() as session:
            row = session.scalar(select(CredentialRow).where(CredentialRow.lookup == lookup))
            if row is None:
                return None
            user = session.get(UserRow, row.user_id) if row.user_id is not None else None
            device = session.get(DeviceRow, row.device_id) if row.device_id is not None else None
            active = row.revoked_at is None and (row.kind != ENROL or row.used_at is None)
            if row.kind == USER:
                active = active and user is not None and user.revoked_at is None
            return CredentialRecord(row.id, row.kind, row.secret_hash, active, user.name if user else None,
                                    user.role if user else None, row.device_id, device.name if device else None)

    def add_enrolment_token(self, *, lookup: str, secret_hash: str, actor: str) -> int:
        """A one-time token that lets one agent register (and get its own device token)."""
        with self._session() as session:
            row = CredentialRow(kind=ENROL, lookup=lookup, secret_hash=secret_hash, created_by=actor,
                                created_at=utcnow())
            session.add(row)
            session.flush()
            add_event(session, actor, "add_enrolment_token", "credential", row.id)
            return row.id

    def enrol_device(self, enrol_credential_id: int, name: str, *, hardware: dict, interpreter: str,
                     lookup: str, secret_hash: str, offline_after: float) -> DeviceInfo:
        """Spend an enrolment token: register (or re-enrol) the device and issue its token, in one write.

        Re-enrolling a name revokes the device's earlier tokens, so a lost device's token stops working.
        """
        with self._session() as session:
            now = utcnow()
            spent = session.execute(
                update(CredentialRow).where(CredentialRow.id == enrol_credential_id, CredentialRow.kind == ENROL,
                                            CredentialRow.used_at.is_(None), CredentialRow.revoked_at.is_(None))
                .values(used_at=now)).rowcount
            if spent != 1:
                raise Conflict("this enrolment token was already used: ask an admin for a new one "
                               "(`hopper device enrol-token`)", field="token")
            row = session.scalar(select(DeviceRow).where(DeviceRow.name == name))
            if row is None:
                row = DeviceRow(name=name, hardware=hardware, interpreter=interpreter, status=DeviceStatus.ONLINE,
                                registered_at=now, last_seen=now)
                session.add(row)
                session.flush()
            else:
                row.hardware, row.interpreter = hardware, interpreter
                row.status, row.last_seen = DeviceStatus.ONLINE, now
                self._revoke_credentials(session, CredentialRow.device_id == row.id)
            session.execute(update(CredentialRow).where(CredentialRow.id == enrol_credential_id)
                            .values(device_id=row.id))
            session.add(CredentialRow(kind=DEVICE, lookup=lookup, secret_hash=secret_hash, device_id=row.id,
                                      created_by=f"enrol:{enrol_credential_id}", created_at=now))
            add_event(session, f"device:{name}", "enrol_device", "device", row.id,
                      after={"name": name, "interpreter": interpreter})
            return device_info(row, offline_after)

    def device_holds_export(self, device_id: int, export_id: int) -> bool:
        """Whether the device holds a running profiling job of this export (so it may download the file)."""
        if not 0 <= export_id <= MAX_ID:
            return False
        with self._session() as session:
            return session.scalar(select(func.count()).select_from(ProfileJobRow).where(
                ProfileJobRow.claimed_by == device_id, ProfileJobRow.export_id == export_id,
                ProfileJobRow.status == JobStatus.RUNNING)) > 0

    def device_holds_job(self, device_id: int, job_id: int) -> bool:
        """Whether the device holds this profiling job now (claimed, running)."""
        if not 0 <= job_id <= MAX_ID:
            return False
        with self._session() as session:
            return session.scalar(select(func.count()).select_from(ProfileJobRow).where(
                ProfileJobRow.id == job_id, ProfileJobRow.claimed_by == device_id,
                ProfileJobRow.status == JobStatus.RUNNING)) > 0

    # -- web sessions ------------------------------------------------------------------------------------
    def open_session(self, session_hash: str, principal: Principal, *, expires_at: datetime,
                     admin_fingerprint: str | None) -> None:
        """Record a logged-in browser (the cookie carries the id whose sha256 is ``session_hash``)."""
        with self._session() as session:
            session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at < utcnow()))
            session.add(WebSessionRow(id=session_hash, subject=principal.name, role=principal.role,
                                      credential_id=principal.credential_id, admin_fingerprint=admin_fingerprint,
                                      created_at=utcnow(), expires_at=expires_at))

    def session_principal(self, session_hash: str, *, admin_fingerprint: str | None) -> Principal | None:
        """Who a live session belongs to; None when it was deleted, expired, or its token revoked or rotated."""
        with self._session() as session:
            row = session.get(WebSessionRow, session_hash)
            if row is None or row.expires_at < utcnow():
                return None
            if row.credential_id is None:
                if admin_fingerprint is None or row.admin_fingerprint != admin_fingerprint:
                    return None
            else:
                cred = session.get(CredentialRow, row.credential_id)
                if cred is None or cred.revoked_at is not None:
                    return None
            return Principal(row.subject, row.role, row.credential_id)

    def close_session(self, session_hash: str) -> bool:
        """Logout: the row is deleted, so a copy of the cookie is worthless."""
        with self._session() as session:
            return session.execute(delete(WebSessionRow).where(WebSessionRow.id == session_hash)).rowcount > 0

    def close_admin_sessions(self, *, keep_fingerprint: str | None = None, actor: str) -> int:
        """End every session opened with the bootstrap admin token (after it was rotated)."""
        with self._session() as session:
            condition = WebSessionRow.credential_id.is_(None)
            if keep_fingerprint is not None:
                condition = condition & or_(WebSessionRow.admin_fingerprint.is_(None),
                                            WebSessionRow.admin_fingerprint != keep_fingerprint)
            closed = session.execute(delete(WebSessionRow).where(condition)).rowcount
            add_event(session, actor, "rotate_admin_token", "credential", None, after={"sessions_closed": closed})
            return closed

    # -- helpers -----------------------------------------------------------------------------------------
    @staticmethod
    def _active_user(session, name: str) -> UserRow:  # noqa: ANN001
        row = session.scalar(select(UserRow).where(UserRow.name == name))
        if row is None or row.revoked_at is not None:
            raise NotFound(f"no active user named {name!r} (`hopper user list` shows them)", field="name")
        return row

    @staticmethod
    def _revoke_credentials(session, condition) -> None:  # noqa: ANN001
        ids = list(session.scalars(select(CredentialRow.id).where(condition, CredentialRow.revoked_at.is_(None))))
        if not ids:
            return
        session.execute(update(CredentialRow).where(CredentialRow.id.in_(ids)).values(revoked_at=utcnow()))
        session.execute(delete(WebSessionRow).where(WebSessionRow.credential_id.in_(ids)))

    @staticmethod
    def _user_info(session, row: UserRow) -> UserInfo:  # noqa: ANN001
        active = session.scalar(select(func.count()).select_from(CredentialRow).where(
            CredentialRow.user_id == row.id, CredentialRow.revoked_at.is_(None))) or 0
        return UserInfo(row.id, row.name, row.role, row.created_at, row.revoked_at, int(active))
