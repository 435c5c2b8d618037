import numpy as np
import pytest

from hopper.engine.errors import TrainingError
from hopper.mop_scheduler.worker.checkpoints import (
    file_sha256,
    load_checkpoint,
    save_checkpoint,
    transfer_weights,
)


@pytest.fixture(scope="module")
def factory():
    from hopper.mop_scheduler.worker.factory import ModelFactory

    return ModelFactory("mlp", (8,), 3, "classification")


def _trained(factory, units=16, seed=0):
    model = factory.build({"units": units, "layers": 1})
    rng = np.random.default_rng(seed)
    model.fit(rng.random((32, 8), dtype=np.float32), rng.integers(0, 3, 32), epochs=1, verbose=0)
    return model


def test_round_trip_restores_weights_and_optimizer_state(factory, tmp_path):
    source = _trained(factory)
    sha, size = save_checkpoint(source, tmp_path / "a.ckpt")
    assert sha == file_sha256(tmp_path / "a.ckpt") and size == (tmp_path / "a.ckpt").stat().st_size
    target = factory.build({"units": 16, "layers": 1})
    load_checkpoint(target, tmp_path / "a.ckpt", sha)
    for a, b in zip(source.get_weights(), target.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    src_opt = [v.numpy() for v in source.optimizer.variables]
    dst_opt = [v.numpy() for v in target.optimizer.variables]
    assert int(dst_opt[0]) == int(src_opt[0]) > 0  # iteration count carried over
    for a, b in zip(src_opt, dst_opt, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.glob("*.partial"))


def test_models_of_one_architecture_share_one_traced_reader_and_assigner(factory, tmp_path, caplog):
    """A hop onto a fresh model of an architecture the worker has seen traces nothing: the compiled reader and
    assigner take the variables as arguments (once per shapes), and TensorFlow logs no retracing warning."""
    from hopper.mop_scheduler.worker.checkpoints import _StateFunctions

    def traces() -> tuple[int, int]:
        return _StateFunctions.traces["read"], _StateFunctions.traces["assign"]

    path = tmp_path / "a.ckpt"
    sha, _ = save_checkpoint(_trained(factory), path)
    load_checkpoint(factory.build({"units": 16, "layers": 1}), path, sha)  # traced here or by an earlier test
    before = traces()
    for _ in range(6):  # TensorFlow warns from the fifth trace of one Python function on
        model = factory.build({"units": 16, "layers": 1})
        load_checkpoint(model, path, sha)
        save_checkpoint(model, tmp_path / "b.ckpt")
    assert traces() == before
    # Other shapes: one trace each (a width no other test builds, so that no earlier test in this process traced it).
    sha, _ = save_checkpoint(_trained(factory, units=11), path)
    load_checkpoint(factory.build({"units": 11, "layers": 1}), path, sha)
    assert traces() == (before[0] + 1, before[1] + 1)
    # (Keras' own train function may warn here: each fresh model's fit traces it, and this test trains several.)
    ours = [r.getMessage() for r in caplog.records if "retracing" in r.getMessage() and "_StateFunctions" in r.getMessage()]
    assert not ours, ours


def test_corrupted_or_partial_checkpoints_are_never_used(factory, tmp_path):
    source = _trained(factory)
    path = tmp_path / "b.ckpt"
    sha, _ = save_checkpoint(source, path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    target = factory.build({"units": 16, "layers": 1})
    before = target.get_weights()
    with pytest.raises(TrainingError, match="sha256"):
        load_checkpoint(target, path, sha)
    path.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(TrainingError, match="sha256"):
        load_checkpoint(target, path, sha)
    with pytest.raises(TrainingError, match="missing"):
        load_checkpoint(target, tmp_path / "never-written.ckpt", sha)
    for a, b in zip(before, target.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_wrong_architecture_is_refused_and_warm_start_copies_what_fits(factory, tmp_path):
    source = _trained(factory, units=16)
    sha, _ = save_checkpoint(source, tmp_path / "c.ckpt")
    wider = factory.build({"units": 32, "layers": 1})
    with pytest.raises(TrainingError, match="does not fit"):
        load_checkpoint(wider, tmp_path / "c.ckpt", sha)
    copied, total = transfer_weights(wider, tmp_path / "c.ckpt", sha)
    assert (copied, total) == (1, 4)  # only the output bias keeps its shape when the width changes
    same = factory.build({"units": 16, "layers": 1, "lr": 0.5})
    assert transfer_weights(same, tmp_path / "c.ckpt", sha) == (4, 4)


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_checkpoints_at_an_fsspec_url_round_trip_and_are_removed(factory, tmp_path, scheme):
    import fsspec

    from hopper.mop_scheduler.worker.checkpoints import join_location, remove_checkpoint

    base = tmp_path.as_uri() if scheme == "file" else f"memory://ckpt-{tmp_path.name}"
    url = join_location(base, "workload-1", "config-2", "e0000-p000-s1.npz")
    source = _trained(factory)
    sha, size = save_checkpoint(source, url)
    fs, path = fsspec.core.url_to_fs(url)
    assert fs.size(path) == size and file_sha256(url) == sha
    assert not fs.exists(path + ".partial")
    target = factory.build({"units": 16, "layers": 1})
    assert load_checkpoint(target, url, sha)
    for a, b in zip(source.get_weights(), target.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TrainingError, match="sha256"):
        load_checkpoint(target, url, "0" * 64)
    remove_checkpoint(url)
    assert not fs.exists(path)
    with pytest.raises(TrainingError, match="missing"):
        load_checkpoint(target, url, sha)
    remove_checkpoint(url)  # already gone: fine


def test_the_worker_guard_lets_only_hoppers_own_io_through(tmp_path):
    """A guarded worker refuses sockets, except inside trusted_io() (checkpoints at a remote URL)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code = f"""
import socket
from hopper.mop_scheduler.worker.sandbox import install_guard, trusted_io
install_guard([{str(tmp_path)!r}], {str(tmp_path / "tmp")!r})
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=5)
    print("user code connected")
except PermissionError:
    print("user code refused")
with trusted_io():
    socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
    print("hopper io connected")
"""
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[:2] == ["user code refused", "hopper io connected"], out.stdout + out.stderr
