"""Built-in model builders (MLP, CNN, MobileNetV2, ResNet50, BERT-style encoders) and their compile step.

The catalogue of names and defaults lives in ``hopper.engine.catalog`` and is re-exported here for
roster users; users' scripts are loaded by ``hopper.mop_scheduler.worker.factory``. Importing this
package does not import TensorFlow; builders import Keras when called.
"""

from hopper.engine.catalog import (
    COMMON_HPARAMS,
    ROSTER,
    RosterEntry,
    check_hparam_value,
    check_hparams,
    get_entry,
)

__all__ = ["COMMON_HPARAMS", "ROSTER", "RosterEntry", "check_hparam_value", "check_hparams", "get_entry"]
