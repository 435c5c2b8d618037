"""Validate an uploaded model script in a child process: ``python -m hopper.mop_scheduler.worker.validate``.

The parent (``validate_script``, the services' ``ScriptValidator``) never imports the script
itself: a script that raises, hangs, or eats memory can only take down this child. The child
prints one JSON line on stdout.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from hopper.engine.entities import ScriptCheck

_MARKER = "HOPPER-VALIDATION-RESULT "


def _limit_resources(memory_mb: int):  # noqa: ANN202
    def apply() -> None:
        os.setsid()
        if memory_mb > 0:
            limit = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def validate_script(path: str | Path, entry_point: str = "build_model", *, input_shape: tuple = (64,),
                    n_outputs: int = 10, task: str = "classification", sample_config: dict | None = None,
                    timeout: float = 60.0, memory_mb: int = 0, allowed_roots: Sequence[str] = ()) -> ScriptCheck:
    """Import the script and build one model in a separate process, within a time limit.

    Returns:
        a ScriptCheck; ``ok`` is False with the reason and traceback when the script is unusable.
    """
    args = {"path": str(path), "entry_point": entry_point, "input_shape": list(input_shape),
            "n_outputs": n_outputs, "task": task, "sample_config": sample_config or {},
            "allowed_roots": [str(r) for r in allowed_roots]}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "hopper.mop_scheduler.worker.validate", json.dumps(args)],
            capture_output=True, text=True, timeout=timeout, env=env, preexec_fn=_limit_resources(memory_mb),
        )
    except subprocess.TimeoutExpired:
        return ScriptCheck(False, None, f"the script did not finish building a model within {timeout:g} s "
                           "(does it loop forever or train at import?)")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARKER):
            data = json.loads(line[len(_MARKER):])
            data["notes"] = tuple(data.get("notes") or ())
            return ScriptCheck(**data)
    tail = (proc.stderr or "").strip().splitlines()[-15:]
    return ScriptCheck(False, None, f"the validation process died (exit code {proc.returncode})",
                       details="\n".join(tail))


def _child(args: dict) -> ScriptCheck:
    from hopper.engine.errors import HopperError
    from hopper.mop_scheduler.worker import hopper_package_roots
    from hopper.mop_scheduler.worker.factory import ModelFactory
    from hopper.mop_scheduler.worker.sandbox import install_guard

    script_dir = os.path.dirname(os.path.realpath(args["path"]))
    install_guard([script_dir, *args.get("allowed_roots", []), *hopper_package_roots()],
                  os.path.join(script_dir, "tmp", str(os.getpid())))
    stage = "import"
    try:
        factory = ModelFactory("script:" + args["path"], tuple(args["input_shape"]), int(args["n_outputs"]),
                               args["task"], entry_point=args["entry_point"])
        stage = "read search space"
        space = factory.search_space_from_script()
        stage = "build"
        model = factory.build(dict(args.get("sample_config") or {}))
        return ScriptCheck(True, factory.kind, f"ok: {factory.kind} building {model.name} "
                           f"({model.count_params()} parameters)", space=space,
                           compiled=not factory.compiled_by_factory, params=int(model.count_params()),
                           notes=tuple(factory.notes))
    except HopperError as exc:
        return ScriptCheck(False, None, f"{stage}: {exc.message}", details=traceback.format_exc())
    except BaseException as exc:  # noqa: BLE001 - report anything the user's code raises
        return ScriptCheck(False, None, f"{stage} failed: {type(exc).__name__}: {exc}",
                           details=traceback.format_exc())


if __name__ == "__main__":
    result = _child(json.loads(sys.argv[1]))
    sys.stdout.write("\n" + _MARKER + json.dumps(result.to_dict()) + "\n")
    sys.stdout.flush()
    os._exit(0)
