"""Rows for store-level tests: a placeholder dataset and a grid workload on it, no files behind them."""

from __future__ import annotations

from sqlalchemy.orm import Session

from hopper.engine.store import DatasetRow, WorkloadRow


def seed_workload(session: Session) -> WorkloadRow:
    """Add a 2-partition dataset row and a workload on it (flushed, so ids are set)."""
    ds = DatasetRow(name="d", source_path="/x", format="npz", feature_columns=["x"], label_column="y",
                    task="classification", n_rows=10, n_train=8, n_validation=2, feature_shape=[4],
                    classes=[0, 1], partition_count=2, partition_paths=["a", "b"], validation_path="v", schema={})
    session.add(ds)
    session.flush()
    wl = WorkloadRow(name="w", procedure="grid", search_space={"lr": 0.1}, objectives=[
        {"metric": "val_accuracy", "direction": "max"}], max_epochs=2, dataset_id=ds.id, model_ref="mlp")
    session.add(wl)
    session.flush()
    return wl
