"""Validate an uploaded model script in a child process: ``python -m hopper.mop_scheduler.worker.validate``.

The parent (``validate_script``, the services' ``ScriptValidator``) never imports the script
itself: a script that raises, hangs, or eats memory can only take down this child. The child
prints one JSON line on stdout.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hopper.engine.entities import ScriptCheck
from hopper.mop_scheduler.worker.confine import Plan, enter, identity
from hopper.mop_scheduler.worker.runner import MIN_INTEROP_THREADS

_MARKER = "HOPPER-VALIDATION-RESULT "
log = logging.getLogger("hopper.mop_scheduler.worker.validate")


@dataclass(frozen=True)
class Limits:
    """Resource limits of a process running user code, applied with ``setrlimit`` in the child before exec.

    Zero means "no limit" for each. ``RLIMIT_NPROC`` counts every process of the (real) user, so it bites
    hardest when user code runs as the dedicated sandbox user; root is exempt from it.
    """

    memory_mb: int = 4096  # address space (RLIMIT_AS): a 20 GiB allocation fails with MemoryError
    cpu_seconds: int = 120  # CPU time (RLIMIT_CPU): SIGXCPU past it
    processes: int = 256  # processes and threads of the user (RLIMIT_NPROC)
    file_mb: int = 1024  # largest file written (RLIMIT_FSIZE): SIGXFSZ past it


def apply_limits(limits: Limits) -> None:
    """Set the limits on the calling process (and so on everything it starts); no core dumps either."""
    mb = 1024 * 1024
    for which, value in ((resource.RLIMIT_AS, limits.memory_mb * mb), (resource.RLIMIT_CPU, limits.cpu_seconds),
                         (resource.RLIMIT_NPROC, limits.processes), (resource.RLIMIT_FSIZE, limits.file_mb * mb)):
        if value > 0:
            _soft, hard = resource.getrlimit(which)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            # CPU: SIGXCPU at the soft limit names the reason; SIGKILL at the hard one if it is ignored.
            ceiling = value + 5 if which == resource.RLIMIT_CPU and hard == resource.RLIM_INFINITY else value
            resource.setrlimit(which, (value, ceiling))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _contained_child(limits: Limits) -> None:
    apply_limits(limits)
    os.nice(10)  # a validation yields the CPU to the web server and the scheduler


@functools.cache
def _netns_prefix() -> tuple[str, ...]:
    """``unshare --net --`` when it works here (root, util-linux): the child then has no network at all."""
    tool = shutil.which("unshare")
    if tool is None or os.geteuid() != 0:
        return ()
    try:
        probe = subprocess.run([tool, "--net", "--", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return (tool, "--net", "--") if probe.returncode == 0 else ()


def kill_group(pgid: int) -> None:
    """SIGKILL a whole process group (the child and everything it started that stayed in its session)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass(frozen=True)
class Contained:
    """What a contained run returned: exit code (negative: the signal), output, and whether it timed out."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool


def run_contained(command: Sequence[str], *, timeout: float, limits: Limits, env: dict[str, str] | None = None,
                  network: bool = False) -> Contained:
    """Run a command in its own session and process group, with rlimits and no network when possible; on
    timeout (and after it exits) the whole group is killed. A Python child that confines itself further
    (``confine.enter``: user, view) passes ``network=True`` and takes its network namespace itself."""
    prefix = () if network else _netns_prefix()
    # Output goes to files, not pipes: a background child that inherited a pipe would keep it open (and us
    # waiting) after the child itself exited.
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        proc = subprocess.Popen([*prefix, *command], stdout=out_file, stderr=err_file, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True,
                                preexec_fn=functools.partial(_contained_child, limits))
        try:
            proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            kill_group(proc.pid)  # the child on timeout, and whatever it left behind (a `sleep 300 &`)
            proc.wait()
        out_file.seek(0)
        err_file.seek(0)
        out = out_file.read().decode(errors="replace")
        err = err_file.read().decode(errors="replace")
    return Contained(proc.returncode, out or "", err or "", timed_out)


_SIGNAL_REASONS = {signal.SIGXCPU: "it used more CPU time than the limit ({cpu} s, HOPPER_SCRIPT_CPU_SECONDS)",
                   signal.SIGXFSZ: "it wrote a file larger than the limit ({file} MB, HOPPER_SCRIPT_FILE_MB)",
                   signal.SIGKILL: "it was killed (out of memory?)",
                   signal.SIGSEGV: "it crashed (segmentation fault)"}


def validate_script(path: str | Path, entry_point: str = "build_model", *, input_shape: tuple = (64,),
                    n_outputs: int = 10, task: str = "classification", sample_config: dict | None = None,
                    timeout: float = 60.0, memory_mb: int = 4096, allowed_roots: Sequence[str] = (),
                    cpu_seconds: int = 120, processes: int = 256, file_mb: int = 1024, user: str = "",
                    limits: Limits | None = None, label_kind: str | None = None,
                    columns: Sequence[dict] | None = None, label_names: Sequence[str] | None = None) -> ScriptCheck:
    """Import the script and build one model in a contained child process, within a time limit.

    ``label_kind`` (the dataset's labels) picks the default compile's loss; ``columns`` (a table's column
    schema) lets the check say at upload, not at the first sub-epoch, that the model's inputs do not fit it;
    ``label_names`` (its label columns) are in the bound ``train_dataframe`` as they will be in training.

    Returns:
        a ScriptCheck; ``ok`` is False with the reason and traceback when the script is unusable.
    """
    limits = limits or Limits(memory_mb=memory_mb, cpu_seconds=cpu_seconds, processes=processes, file_mb=file_mb)
    args = {"path": str(path), "entry_point": entry_point, "input_shape": list(input_shape),
            "n_outputs": n_outputs, "task": task, "sample_config": sample_config or {},
            "allowed_roots": [str(r) for r in allowed_roots], "label_kind": label_kind,
            "columns": list(columns) if columns else None, "label_names": list(label_names or ()) or None}
    # Small pools (one compute thread, the inter-op minimum of the workers): under the sandbox user RLIMIT_NPROC
    # counts every thread of that user, and TensorFlow would otherwise start pools as wide as the machine.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "TF_NUM_INTRAOP_THREADS": "1",
           "TF_NUM_INTEROP_THREADS": str(MIN_INTEROP_THREADS), "OMP_NUM_THREADS": "1"}
    owner = identity(user)
    # A private copy of the script in a directory of the sandbox user's own (its HOME and temp dir there): the
    # child sees it, the data roots and the runtime, never the stored scripts, the store or the token.
    run_dir = tempfile.mkdtemp(prefix="hopper-validate-")
    copy = os.path.join(run_dir, "script.py")
    shutil.copyfile(path, copy)
    if owner is not None:
        for item in (run_dir, copy):
            os.chown(item, *owner)
    args["path"], env["HOME"] = copy, run_dir
    args["confine"] = Plan(user=user, readable=tuple(args["allowed_roots"]), scratch=run_dir).to_json()
    try:
        proc = run_contained([sys.executable, "-m", "hopper.mop_scheduler.worker.validate", json.dumps(args)],
                             timeout=timeout, limits=limits, env=env, network=True)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    if proc.timed_out:
        return ScriptCheck(False, None, f"the script did not finish building a model within {timeout:g} s "
                           "(does it loop forever or train at import?); its process group was killed")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARKER):
            data = json.loads(line[len(_MARKER):])
            data["notes"] = tuple(data.get("notes") or ())
            _log_layers(data["notes"])
            data["needs_entry_args"] = tuple(data.get("needs_entry_args") or ())
            data["needs_bind_globals"] = tuple(data.get("needs_bind_globals") or ())
            return ScriptCheck(**data)
    tail = (proc.stderr or "").strip().splitlines()[-15:]
    reason = f"exit code {proc.returncode}"
    if proc.returncode < 0:
        template = _SIGNAL_REASONS.get(-proc.returncode)
        name = signal.Signals(-proc.returncode).name
        reason = f"{name}: " + (template.format(cpu=limits.cpu_seconds, file=limits.file_mb) if template else name)
    return ScriptCheck(False, None, f"the validation process died ({reason})", details="\n".join(tail))


_layers_seen: set[str] = set()


def _log_layers(notes: Sequence[str]) -> None:
    """Log which sandbox layers validation children have, once per distinct set (not once per upload)."""
    for note in notes:
        if note.startswith("sandbox: ") and note not in _layers_seen:
            _layers_seen.add(note)
            log.info("script validation: %s", note)


def _free_globals_note(free_globals: dict[str, str]) -> tuple[str, ...]:
    if not free_globals:
        return ()
    binding = ", ".join(f"{n}: {w}" for n, w in free_globals.items())
    return (f"the script reads module globals it does not define ({', '.join(free_globals)}): launch it with "
            f"bind_globals: {{{binding}}} (validated with a synthetic sample bound to them)",)


def _child(args: dict) -> ScriptCheck:
    from hopper.engine.errors import HopperError
    from hopper.mop_scheduler.worker import hopper_package_roots
    from hopper.mop_scheduler.worker.sandbox import install_guard, lock_down

    # The OS layers first (as root, before any user code), then the audit hook as a second layer inside them.
    layers = enter(Plan.from_json(args["confine"]), runtime=hopper_package_roots()) if args.get("confine") else None
    sandbox = layers.describe() if layers is not None else "sandbox: audit hook and rlimits only"
    from hopper.mop_scheduler.worker.factory import ModelFactory

    script_dir = os.path.dirname(os.path.realpath(args["path"]))
    install_guard([script_dir, *args.get("allowed_roots", []), *hopper_package_roots()],
                  os.path.join(script_dir, "tmp", str(os.getpid())))
    # Hopper's own imports may start helper processes and load libraries; the user's code may not.
    import keras  # noqa: F401
    import tensorflow  # noqa: F401

    lock_down()
    stage = "import"
    try:
        from hopper.mop_scheduler.worker.factory import (
            SCRIPT_PREFIX,
            import_with_free_globals,
            required_init_args,
            resolve_entry,
            synthetic_data,
        )

        sample = synthetic_data(tuple(args["input_shape"]), int(args["n_outputs"]), args["task"])
        if args.get("columns"):
            sample = _synthetic_table(args["columns"], sample)
        sample = _labels_of_kind(sample, args.get("label_kind"), int(args["n_outputs"]))
        if args.get("label_names"):
            from hopper.mop_scheduler.worker.build_data import BuildData, with_labels

            sample = BuildData(sample.x, sample.y, with_labels(sample.frame, sample.y, args["label_names"]))
        module, free_globals = import_with_free_globals(args["path"], sample)
        stage = "find the entry"
        name, entry, kind = resolve_entry(module, args["entry_point"])
        missing = required_init_args(entry) if kind == "hypermodel" and isinstance(entry, type) else []
        if missing:
            # Usable once a workload gives the arguments: accepted, and the launch checks they are there.
            needs = ", ".join(missing)
            return ScriptCheck(True, kind, f"ok: {name} is a HyperModel class whose __init__ needs {needs}: give them "
                               f"in the workload spec as entry_args, or use an instance (hypermodel = {name}(...), "
                               f"--entry hypermodel)", entry=name, needs_entry_args=tuple(missing),
                               needs_bind_globals=tuple(free_globals))
        factory = ModelFactory(SCRIPT_PREFIX + args["path"], tuple(args["input_shape"]), int(args["n_outputs"]),
                               args["task"], entry_point=name, bind_globals=free_globals or None,
                               data_source=lambda: sample, label_kind=args.get("label_kind"))
        stage = "read search space"
        space = factory.search_space_from_script()
        stage = "build"
        model = factory.build(dict(args.get("sample_config") or {}))
        if args.get("columns"):
            from hopper.engine.data import Columns
            from hopper.mop_scheduler.worker.inputs import features_for

            stage = "inputs"
            features_for(model, Columns.empty(args["columns"]))
        return ScriptCheck(True, factory.kind, f"ok: {factory.kind} {name} building {model.name} "
                           f"({model.count_params()} parameters)", space=space,
                           compiled=not factory.compiled_by_factory, params=int(model.count_params()),
                           notes=(*factory.notes, sandbox, *_free_globals_note(free_globals)), entry=name,
                           needs_bind_globals=tuple(free_globals))
    except HopperError as exc:
        return ScriptCheck(False, None, f"{stage}: {exc.message}", details=traceback.format_exc(), notes=(sandbox,))
    except BaseException as exc:  # noqa: BLE001 - report anything the user's code raises
        return ScriptCheck(False, None, f"{stage} failed: {type(exc).__name__}: {exc}",
                           details=traceback.format_exc(), notes=(sandbox,))

def _labels_of_kind(sample, label_kind: str | None, n_outputs: int):  # noqa: ANN001, ANN202
    """The stand-in sample with labels shaped like the dataset's (one-hot or multi-hot rows), so that a ``fit``
    run to discover its hyperparameters trains with the loss the script compiled for those labels."""
    import numpy as np

    from hopper.engine.data import MULTI_LABEL, ONE_HOT
    from hopper.mop_scheduler.worker.build_data import BuildData

    if label_kind not in (ONE_HOT, MULTI_LABEL):
        return sample
    k, rows, rng = max(n_outputs, 2), len(sample.y), np.random.default_rng(1)
    y = (np.eye(k, dtype=np.float32)[rng.integers(0, k, rows)] if label_kind == ONE_HOT
         else (rng.random((rows, k)) < 0.5).astype(np.float32))
    return BuildData(sample.x, y, sample.frame)


def _synthetic_table(columns: Sequence[dict], sample):  # noqa: ANN001, ANN202
    """A stand-in sample of a typed table (its column names and types), so that a builder or a bound
    ``train_dataframe`` sees the columns it will get in training: ``frame`` the table, ``x`` its matrix."""
    import numpy as np

    from hopper.engine.data import _STRING_TYPES, INT, TOKEN_IDS, Columns
    from hopper.mop_scheduler.worker.build_data import BuildData

    rows, rng = len(sample.y), np.random.default_rng(0)
    arrays = []
    for column in columns:
        if column["type"] == TOKEN_IDS:
            arrays.append(rng.integers(1, 100, size=(rows, int(column.get("length", 8)))).astype(np.int32))
        elif column["type"] in _STRING_TYPES:
            arrays.append(np.asarray([f"value {i % 5}" for i in range(rows)], dtype=object))
        elif column["type"] == INT:
            arrays.append(rng.integers(0, 4, size=rows).astype(np.int64))
        else:
            arrays.append(rng.normal(size=rows).astype(np.float32))
    table = Columns(tuple(c["name"] for c in columns), tuple(c["type"] for c in columns), tuple(arrays))
    return BuildData(table.matrix if not table.string_columns else table, sample.y, table.to_frame())


if __name__ == "__main__":
    result = _child(json.loads(sys.argv[1]))
    sys.stdout.write("\n" + _MARKER + json.dumps(result.to_dict()) + "\n")
    sys.stdout.flush()
    os._exit(0)
