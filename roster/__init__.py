"""Built-in model builders and the loader for user-uploaded Keras scripts.

Importing this package does not import TensorFlow; builders import Keras when called.
"""

from hopper.roster._catalog import (
    COMMON_HPARAMS,
    ROSTER,
    RosterEntry,
    check_hparam_value,
    check_hparams,
    get_entry,
)

__all__ = ["COMMON_HPARAMS", "ROSTER", "RosterEntry", "check_hparam_value", "check_hparams", "get_entry"]
