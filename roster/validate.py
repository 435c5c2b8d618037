"""Validate an uploaded model script in a child process: ``python -m hopper.roster.validate``.

The parent (``validate_script``) never imports the script itself: a script that raises, hangs,
or eats memory can only take down this child. The child prints one JSON line on stdout.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

_MARKER = "HOPPER-VALIDATION-RESULT "


@dataclass(frozen=True)
class ScriptValidation:
    ok: bool
    kind: str | None
    message: str
    details: str = ""
    space: dict | None = None
    compiled: bool | None = None
    params: int | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"ok": self.ok, "kind": self.kind, "message": self.message, "details": self.details,
                "space": self.space, "compiled": self.compiled, "params": self.params, "notes": list(self.notes)}


def _limit_resources(memory_mb: int):  # noqa: ANN202
    def apply() -> None:
        os.setsid()
        if memory_mb > 0:
            limit = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def validate_script(path: str | Path, entry_point: str = "build_model", *, input_shape: tuple = (64,),
                    n_outputs: int = 10, task: str = "classification", sample_config: dict | None = None,
                    timeout: float = 60.0, memory_mb: int = 0, allowed_roots: tuple = ()) -> ScriptValidation:
    """Import the script and build one model in a separate process, within a time limit.

    Returns:
        a ScriptValidation; ``ok`` is False with the reason and traceback when the script is unusable.
    """
    args = {"path": str(path), "entry_point": entry_point, "input_shape": list(input_shape),
            "n_outputs": n_outputs, "task": task, "sample_config": sample_config or {},
            "allowed_roots": [str(r) for r in allowed_roots]}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "hopper.roster.validate", json.dumps(args)],
            capture_output=True, text=True, timeout=timeout, env=env, preexec_fn=_limit_resources(memory_mb),
        )
    except subprocess.TimeoutExpired:
        return ScriptValidation(False, None, f"the script did not finish building a model within {timeout:g} s "
                                "(does it loop forever or train at import?)")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARKER):
            data = json.loads(line[len(_MARKER):])
            data["notes"] = tuple(data.get("notes") or ())
            return ScriptValidation(**data)
    tail = (proc.stderr or "").strip().splitlines()[-15:]
    return ScriptValidation(False, None, f"the validation process died (exit code {proc.returncode})",
                            details="\n".join(tail))


def _child(args: dict) -> ScriptValidation:
    from hopper.engine.errors import HopperError
    from hopper.engine.sandbox import install_guard
    from hopper.roster.factory import ModelFactory

    script_dir = os.path.dirname(os.path.realpath(args["path"]))
    install_guard([script_dir, *args.get("allowed_roots", [])], os.path.join(script_dir, "tmp", str(os.getpid())))
    stage = "import"
    try:
        factory = ModelFactory("script:" + args["path"], tuple(args["input_shape"]), int(args["n_outputs"]),
                               args["task"], entry_point=args["entry_point"])
        stage = "read search space"
        space = factory.search_space_from_script()
        stage = "build"
        model = factory.build(dict(args.get("sample_config") or {}))
        return ScriptValidation(True, factory.kind, f"ok: {factory.kind} building {model.name} "
                                f"({model.count_params()} parameters)", space=space,
                                compiled=not factory.notes, params=int(model.count_params()),
                                notes=tuple(factory.notes))
    except HopperError as exc:
        return ScriptValidation(False, None, f"{stage}: {exc.message}", details=traceback.format_exc())
    except BaseException as exc:  # noqa: BLE001 - report anything the user's code raises
        return ScriptValidation(False, None, f"{stage} failed: {type(exc).__name__}: {exc}",
                                details=traceback.format_exc())


if __name__ == "__main__":
    result = _child(json.loads(sys.argv[1]))
    sys.stdout.write("\n" + _MARKER + json.dumps(result.to_dict()) + "\n")
    sys.stdout.flush()
    os._exit(0)
