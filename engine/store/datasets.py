"""Datasets and uploaded scripts: registered once, read by launches, the scheduler and exporters."""

from __future__ import annotations

from sqlalchemy import select

from hopper.engine.entities import DatasetInfo, DatasetLayout, ScriptInfo
from hopper.engine.errors import Conflict, NotFound, ValidationError
from hopper.engine.store._common import MAX_ID, Repository, add_event, get_row
from hopper.engine.store.models import DatasetRow, ScriptRow


def dataset_row(session, ref: str | int, *, referenced: bool = False) -> DatasetRow:  # noqa: ANN001
    """The dataset by id or name; ``referenced`` makes a missing one a bad input (422), not a 404."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        row = session.get(DatasetRow, int(ref)) if 0 <= int(ref) <= MAX_ID else None
    else:
        row = session.scalar(select(DatasetRow).where(DatasetRow.name == ref))
    if row is None:
        error = ValidationError if referenced else NotFound
        raise error(f"dataset {ref!r} does not exist (register it first)", field="dataset")
    return row


def layout_of(row: DatasetRow) -> DatasetLayout:
    info = DatasetInfo.from_row(row)
    return DatasetLayout(row.id, tuple(row.partition_paths), row.validation_path, tuple(info.feature_shape),
                         info.n_outputs, info.task, dict(row.schema or {}))


class DatasetStore(Repository):
    def name_taken(self, name: str) -> bool:
        with self._session() as session:
            return session.scalar(select(DatasetRow.id).where(DatasetRow.name == name)) is not None

    def add(self, *, actor: str, **fields: object) -> DatasetInfo:
        """Record a partitioned dataset (the files are already written) and audit it."""
        with self._session() as session:
            if session.scalar(select(DatasetRow.id).where(DatasetRow.name == fields["name"])) is not None:
                raise Conflict(f"a dataset named {fields['name']!r} already exists", field="name")
            row = DatasetRow(**fields)
            session.add(row)
            session.flush()
            add_event(session, actor, "register_dataset", "dataset", row.id,
                      after={"name": row.name, "rows": row.n_rows, "partitions": row.partition_count})
            return DatasetInfo.from_row(row)

    def list(self) -> list[DatasetInfo]:
        with self._session() as session:
            return [DatasetInfo.from_row(r) for r in session.scalars(select(DatasetRow).order_by(DatasetRow.id))]

    def get(self, ref: str | int, *, referenced: bool = False) -> DatasetInfo:
        """By id or name; ``referenced``: the caller names it in a spec, so a missing one is a 422."""
        with self._session() as session:
            return DatasetInfo.from_row(dataset_row(session, ref, referenced=referenced))

    def layout(self, dataset_id: int) -> DatasetLayout:
        with self._session() as session:
            return layout_of(get_row(session, DatasetRow, dataset_id, "dataset"))


class ScriptStore(Repository):
    def add(self, *, name: str, sha256: str, path: str, entry_point: str, kind: str | None, valid: bool,
            validation: dict, actor: str, message: str | None) -> ScriptInfo:
        """Record an uploaded script with its validation result (kept for rejected ones too)."""
        with self._session() as session:
            row = ScriptRow(name=name, sha256=sha256, path=path, entry_point=entry_point, kind=kind, valid=valid,
                            validation=validation)
            session.add(row)
            session.flush()
            add_event(session, actor, "upload_script", "script", row.id,
                      after={"name": name, "valid": valid, "message": message})
            return ScriptInfo.from_row(row)

    def record_validation(self, script_id: int, *, kind: str | None, valid: bool, validation: dict) -> ScriptInfo:
        """Store the result of a validation that ran after the upload returned (the pool's worker thread)."""
        with self._session() as session:
            row = get_row(session, ScriptRow, script_id, "script")
            row.kind, row.valid, row.validation = kind, valid, validation
            add_event(session, "validator", "validate_script", "script", row.id,
                      after={"valid": valid, "message": validation.get("message")})
            session.flush()
            return ScriptInfo.from_row(row)

    def list(self, *, valid_only: bool = False) -> list[ScriptInfo]:
        with self._session() as session:
            stmt = select(ScriptRow).order_by(ScriptRow.id)
            if valid_only:
                stmt = stmt.where(ScriptRow.valid.is_(True))
            return [ScriptInfo.from_row(r) for r in session.scalars(stmt)]

    def get(self, script_id: int) -> ScriptInfo:
        with self._session() as session:
            return ScriptInfo.from_row(get_row(session, ScriptRow, script_id, "script"))

    def location(self, script_id: int) -> tuple[str, str]:
        """(path on the server, entry point): for workers, never shown to users."""
        with self._session() as session:
            row = get_row(session, ScriptRow, script_id, "script")
            return row.path, row.entry_point
