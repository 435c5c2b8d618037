"""The config store: one SQLAlchemy engine, one session helper, schema checks and migrations."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError as AlembicCommandError
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from hopper.engine.errors import Conflict, HopperError, SchemaOutOfDate, StoreUnavailable, ValidationError
from hopper.engine.store.configs import ConfigStore
from hopper.engine.store.datasets import DatasetStore, ScriptStore
from hopper.engine.store.edge import EdgeStore
from hopper.engine.store.evaluations import EvaluationStore
from hopper.engine.store.identity import IdentityStore
from hopper.engine.store.lease import LeaseStore
from hopper.engine.store.notes import NoteStore
from hopper.engine.store.schedule import EventStore, ScheduleStore
from hopper.engine.store.schedules import CronScheduleStore
from hopper.engine.store.suggestions import SuggestionStore
from hopper.engine.store.webhooks import WebhookStore
from hopper.engine.store.workers import WorkerPoolStore
from hopper.engine.store.workloads import WorkloadStore

log = logging.getLogger("hopper.engine.store")

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _migrations_dir() -> Path:
    import hopper.migrations

    return Path(hopper.migrations.__file__).resolve().parent


def _enable_sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # noqa: ANN001
        # WAL lets the web server read while the scheduler writes; the busy timeout turns
        # short lock waits into waits instead of "database is locked" errors.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB: the scheduler re-reads the config table every step
        cursor.close()


def _private_file(path: Path) -> None:
    """Create the SQLite file 0600 (or tighten one someone loosened) before SQLite opens it.

    The store holds token hashes and every workload; SQLite gives its -wal and -shm files the same mode.
    """
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class Store:
    """A handle on the SQL config store (SQLite or PostgreSQL, one code path).

    Services and the scheduler use its repositories (``store.configs.transition(...)``,
    ``store.schedule.commit_ok(...)``, ``store.edge.claim_job(...)``, ...), which take and return entities;
    ``session()`` is for those repositories, migrations and tests that inspect tables directly.

    Args:
        url: SQLAlchemy database URL.
        check_schema: refuse to work on a database not migrated to the current head.
    """

    def __init__(self, url: str, *, check_schema: bool = True) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite" and parsed.database and parsed.database != ":memory:":
            _private_file(Path(parsed.database).expanduser())
        kwargs: dict = {"future": True}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        if self.dialect == "postgresql" and parsed.drivername == "postgresql":
            url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
        # orjson reads the JSON columns (hparams, metrics) several times faster on the pages that list thousands;
        # the standard parser stays the fallback for values it refuses (NaN written by older versions).
        self.engine = create_engine(url, json_deserializer=_loads_json, **kwargs)
        if self.dialect == "sqlite":
            _enable_sqlite_pragmas(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # The repositories: every SQL statement Hopper runs lives behind one of these, named for what it does.
        self.datasets = DatasetStore(self)
        self.scripts = ScriptStore(self)
        self.workloads = WorkloadStore(self)
        self.configs = ConfigStore(self)
        self.schedule = ScheduleStore(self)
        self.events = EventStore(self)
        self.edge = EdgeStore(self)
        self.identity = IdentityStore(self)
        self.lease = LeaseStore(self)
        self.suggestions = SuggestionStore(self)
        self.evaluations = EvaluationStore(self)
        self.schedules = CronScheduleStore(self)
        self.webhooks = WebhookStore(self)
        self.workers = WorkerPoolStore(self)
        self.notes = NoteStore(self)
        if check_schema:
            self.check_schema()

    # -- schema -------------------------------------------------------------------------------
    def _alembic_config(self) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(_migrations_dir()))
        cfg.attributes["engine"] = self.engine
        return cfg

    def head_revision(self) -> str:
        return ScriptDirectory.from_config(self._alembic_config()).get_current_head()

    def current_revision(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        except (OperationalError, SAInterfaceError) as exc:
            raise StoreUnavailable(f"cannot reach the config store at {self._safe_url()}: {exc.orig}") from exc

    def check_schema(self) -> None:
        """Raise ``SchemaOutOfDate`` unless the database is at the current migration head."""
        current, head = self.current_revision(), self.head_revision()
        if current != head:
            state = "is empty" if current is None else f"is at revision {current}"
            raise SchemaOutOfDate(
                f"the config store {self._safe_url()} {state}, this Hopper needs {head}: run `hopper db upgrade`"
            )

    def upgrade(self, revision: str = "head") -> None:
        """Migrate up to ``revision``.

        Raises:
            ValidationError: ``revision`` names no migration, or lies below the store's current one.
        """
        self._migrate(command.upgrade, revision)

    def downgrade(self, revision: str = "base") -> None:
        """Migrate down to ``revision``.

        Raises:
            ValidationError: ``revision`` names no migration, or lies above the store's current one.
        """
        self._migrate(command.downgrade, revision)

    def _migrate(self, step: Callable[[AlembicConfig, str], None], revision: str) -> None:
        try:
            step(self._alembic_config(), revision)
        except AlembicCommandError as exc:
            # Alembic's own words name the revision; a person needs them, not its traceback.
            raise ValidationError(f"{exc}; known revisions: {', '.join(self.revisions())}",
                                  field="revision") from exc

    def revisions(self) -> list[str]:
        """Every migration's revision id, oldest first (plus ``base`` and ``head``)."""
        script = ScriptDirectory.from_config(self._alembic_config())
        return ["base", *reversed([r.revision for r in script.walk_revisions()]), "head"]

    def _safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    # -- sessions -----------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back on error, maps DB errors to Hopper's."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except HopperError:
            session.rollback()
            raise
        except StaleDataError as exc:
            session.rollback()
            # The optimistic lock on the row's version fired: the same stale write as a stale If-Match.
            raise Conflict("the object was changed by someone else; reload and try again",
                           field="version") from exc
        except IntegrityError as exc:
            session.rollback()
            raise Conflict(f"conflicting write: {exc.orig}") from exc
        except (OperationalError, SAInterfaceError) as exc:
            session.rollback()
            if "locked" in str(exc.orig).lower():
                raise StoreUnavailable(f"the config store is busy: {exc.orig}") from exc
            raise StoreUnavailable(f"cannot reach the config store: {exc.orig}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers a trivial query."""
        with self.session() as session:
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def _loads_json(text: str | bytes) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
