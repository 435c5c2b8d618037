"""Dataset loading, validation and partitioning."""

import numpy as np
import pandas as pd
import pytest

from hopper.engine.data import read_partition
from hopper.engine.errors import Conflict, PathNotAllowed, ValidationError


def _csv(root, name="table.csv", rows=200):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.random(rows), "b": rng.random(rows), "c": rng.random(rows),
                          "species": rng.choice(["cat", "dog", "eel"], rows)})
    path = root / name
    frame.to_csv(path, index=False)
    return path


def test_csv_is_split_and_partitioned_once_per_worker(services, settings):
    path = _csv(settings.data_roots[0])
    info = services.register_dataset({"name": "animals", "path": str(path), "feature_columns": ["a", "c"],
                                      "label_column": "species"})
    assert info.task == "classification" and info.classes == ["cat", "dog", "eel"]
    assert info.feature_shape == [2] and info.partition_count == 2
    assert info.n_train + info.n_validation == 200 and info.n_validation == 40
    with services.store.session() as s:
        from hopper.engine.store import DatasetRow

        row = s.get(DatasetRow, info.id)
        parts = [read_partition(p, [2]) for p in row.partition_paths]
    assert sum(len(x) for x, _ in parts) == info.n_train
    assert abs(len(parts[0][0]) - len(parts[1][0])) <= 1
    assert parts[0][0].matrix.dtype == np.float32 and set(np.unique(parts[0][1])) <= {0, 1, 2}


def test_partitions_are_readable_by_petastorm(services, digits):
    """The Spark tasks' reader (Petastorm, in-thread) sees exactly what the local backend reads.

    The in-thread pool is what the product uses: Petastorm's default thread pool sometimes ended an
    iteration with no batch at all on this 2-core machine, which made this test flaky when it used that pool.
    """
    from hopper.engine.data import read_partition_petastorm

    layout = services.store.datasets.layout(digits.id)
    for path in layout.partition_paths:
        x, y = read_partition_petastorm(path, [8, 8, 1])
        x_local, y_local = read_partition(path, [8, 8, 1])
        assert len(x) == len(x_local) > 0
        np.testing.assert_array_equal(x, x_local)
        np.testing.assert_array_equal(y, y_local)


@pytest.mark.parametrize("spec, error, field", [
    ({"feature_columns": ["a", "zz"], "label_column": "species"}, "'zz' is not in the data", "feature_columns"),
    ({"label_column": "nope"}, "'nope' is not in the data", "label_column"),
    ({"label_column": "species", "label_kind": "one_hot"}, "needs k values per row", "label_kind"),
])
def test_missing_or_bad_columns_are_named(services, settings, spec, error, field):
    path = _csv(settings.data_roots[0])
    with pytest.raises(ValidationError) as info:
        services.register_dataset({"name": "bad", "path": str(path), **spec})
    assert error in info.value.message and info.value.field == field
    assert services.list_datasets() == []


@pytest.mark.parametrize("path", ["/etc/passwd", "{root}/../outside.csv", "{root}/link/secret.csv"])
def test_paths_outside_the_data_roots_are_refused(services, settings, tmp_path, path):
    root = settings.data_roots[0]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _csv(outside, "secret.csv")
    (root / "link").symlink_to(outside)
    _csv(root.parent, "outside.csv")
    with pytest.raises(PathNotAllowed) as info:
        services.register_dataset({"name": "x", "path": path.format(root=root)})
    assert "outside the data roots" in info.value.message and info.value.http_status == 403


def test_npz_regression_and_image_folder(services, settings):
    from PIL import Image

    root = settings.data_roots[0]
    rng = np.random.default_rng(1)
    np.savez(root / "reg.npz", x=rng.random((50, 3)).astype(np.float32), y=rng.random(50))
    info = services.register_dataset({"name": "reg", "path": str(root / "reg.npz")})
    assert info.task == "regression" and info.classes is None
    for label in ("zero", "one"):
        (root / "imgs" / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray((rng.random((10, 12)) * 255).astype(np.uint8)).save(root / "imgs" / label / f"{i}.png")
    info = services.register_dataset({"name": "imgs", "path": str(root / "imgs"), "image_size": [6, 5]})
    assert info.format == "image_folder" and info.feature_shape == [5, 6, 1] and info.classes == ["one", "zero"]


def test_duplicate_names_and_unreadable_files(services, settings):
    root = settings.data_roots[0]
    path = _csv(root)
    services.register_dataset({"name": "t", "path": str(path)})
    with pytest.raises(Conflict):
        services.register_dataset({"name": "t", "path": str(path)})
    (root / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(ValidationError, match="cannot read broken.npz"):
        services.register_dataset({"name": "b", "path": str(root / "broken.npz")})
    with pytest.raises(ValidationError, match="does not exist"):
        services.register_dataset({"name": "m", "path": str(root / "missing.csv")})
    with pytest.raises(ValidationError) as info:
        services.register_dataset({"name": "u", "path": str(path), "colour": "red"})
    assert info.value.field == "colour"
