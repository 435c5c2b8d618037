"""What every service context shares: the store, the settings, and who is acting."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING

from hopper.engine.store import Store

if TYPE_CHECKING:
    from hopper.settings import Settings


def default_actor() -> str:
    """The OS user, for actions taken from this machine's CLI without a named person."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


class ServiceContext:
    """One bounded context of user actions (steering, data, edge, administration) on one store.

    Args:
        store: the config store.
        settings: data roots, artefact dir, worker count, edge leases.
    """

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
