"""Which CLI commands and REST routes the test suite exercises (tests only; off unless HOPPER_TEST_INVENTORY is set).

tests/conftest.py sets ``HOPPER_TEST_INVENTORY=<file>``; every process started under it (the test process,
``hopper`` subprocesses, servers) appends one line per command run or API request, and at the end of a
full run the suite compares the file with ``cli_commands()`` and ``api_routes()``. Production never sets
the variable, so nothing here is imported or registered there.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

import click

ENV = "HOPPER_TEST_INVENTORY"


def record(line: str) -> None:
    """Append LINE to the inventory file; one small O_APPEND write, so concurrent processes do not interleave."""
    path = os.environ.get(ENV)
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line.replace("\n", " ") + "\n").encode())
    finally:
        os.close(fd)


def walk_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every leaf command under GROUP with its path of names (groups themselves do nothing to test)."""
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        if isinstance(command, click.Group):
            yield from walk_commands(command, path)
        else:
            yield path, command


def cli_commands(group: click.Group) -> set[str]:
    return {"cli " + " ".join(path) for path, _ in walk_commands(group)}


def _recording(callback: Callable, line: str) -> Callable:
    @functools.wraps(callback)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        record(line)
        return callback(*args, **kwargs)

    wrapped._inventory_line = line  # type: ignore[attr-defined]
    return wrapped


def instrument_cli(group: click.Group) -> None:
    """Wrap each leaf command's callback so that it records its path before it runs (failures count too)."""
    for path, command in walk_commands(group):
        if command.callback is not None and not hasattr(command.callback, "_inventory_line"):
            command.callback = _recording(command.callback, "cli " + " ".join(path))


def api_routes(app) -> set[str]:  # noqa: ANN001 - a Flask app
    """``METHOD rule`` for every API rule of APP (HEAD and OPTIONS are Flask's, not ours)."""
    return {f"{method} {rule.rule}" for rule in app.url_map.iter_rules() if rule.rule.startswith("/api")
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def record_requests(app) -> None:  # noqa: ANN001 - a Flask app
    """Record ``api METHOD rule status`` after each API request APP answers."""
    from flask import request

    @app.after_request
    def _record(response):  # noqa: ANN001, ANN202
        rule = request.url_rule
        if rule is not None and rule.rule.startswith("/api"):
            record(f"api {request.method} {rule.rule} {response.status_code}")
        return response
