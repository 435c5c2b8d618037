"""The compatibility corpus: per script, its data, how it is uploaded, its two configs and the metric compared.

A script is uploaded unmodified; ``entry`` is the ``--entry`` a user would give (None: Hopper must find the
entry itself), ``entry_args`` the constructor arguments of a ``HyperModel`` class and ``bind_globals`` the
module-level names the script expects, bound to the training data (``x``, ``y`` or ``frame``) as Hopper's
workload spec allows. The two configs differ in exactly one hyperparameter, so a grid over the space
below gives exactly those two. ``objective_from`` says which epoch KerasTuner's objective comes from:
``best`` for a History (KerasTuner keeps the best epoch), ``last`` for a ``fit`` that returns a float
after its whole training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).parent / "scripts"
EPOCHS = 2


@dataclass(frozen=True)
class Case:
    script: str
    dataset: str
    configs: tuple[dict[str, Any], dict[str, Any]]
    metric: str = "val_accuracy"
    direction: str = "max"
    entry: str | None = None  # --entry, only where a user has to say it
    reference_entry: str | None = None  # what the KerasTuner reference builds from, when Hopper finds it itself
    entry_args: dict[str, Any] = field(default_factory=dict)
    bind_globals: dict[str, str] = field(default_factory=dict)
    objective_from: str = "best"
    covers: str = ""

    @property
    def name(self) -> str:
        return self.script.removesuffix(".py")

    @property
    def path(self) -> Path:
        return SCRIPTS / self.script

    @property
    def source(self) -> str:
        return self.path.read_text()

    def space(self) -> dict[str, Any]:
        """The workload's search space: constants for shared values, a two-way choice for the one that differs."""
        a, b = self.configs
        assert a.keys() == b.keys(), f"{self.name}: the two configs must name the same hyperparameters"
        differing = [k for k in a if a[k] != b[k]]
        assert len(differing) == 1, f"{self.name}: the configs must differ in exactly one hyperparameter"
        return {k: ({"type": "choice", "values": [a[k], b[k]]} if k in differing else a[k]) for k in a}


def _lr(a: float, b: float) -> tuple[dict, dict]:
    return {"lr": a}, {"lr": b}


CASES: tuple[Case, ...] = (
    Case("tf_basic_classification.py", "digits28", _lr(1e-3, 3e-3), reference_entry="model",
         covers="module-level Sequential compiled at module level; Flatten first, no Input; logits with "
                "from_logits=True in the script's compile"),
    Case("keras_functional_api.py", "digits784", _lr(1e-3, 3e-3), reference_entry="model",
         covers="module-level functional model compiled at module level (RMSprop, logits)"),
    Case("uncompiled_logits.py", "digits28", _lr(1e-3, 3e-3), reference_entry="model",
         covers="module-level model never compiled, logits output: the default compile must use from_logits"),
    Case("builtin_training_guide.py", "digits784", _lr(1e-3, 3e-3), metric="val_sparse_categorical_accuracy",
         entry="get_compiled_model",
         covers="two zero-argument builders (--entry picks one); single input named 'digits'"),
    Case("mnist_convnet.py", "digits28x1_onehot", _lr(3e-3, 1e-2), reference_entry="model",
         covers="module-level Sequential, one-hot labels with categorical_crossentropy"),
    Case("kt_getting_started.py", "digits28",
         ({"num_layers": 1, "units_0": 64, "units_1": 32, "activation": "relu", "dropout": False, "lr": 3e-3},
          {"num_layers": 2, "units_0": 64, "units_1": 32, "activation": "relu", "dropout": False, "lr": 3e-3}),
         reference_entry="build_model",
         covers="build_model(hp) with conditional layers (units_1 exists only with num_layers=2), hp.Boolean"),
    Case("kt_hypermodel_class.py", "digits28",
         ({"units": 64, "learning_rate": 3e-3}, {"units": 128, "learning_rate": 3e-3}),
         reference_entry="MyHyperModel", covers="HyperModel subclass with build only"),
    Case("kt_tune_model_training.py", "digits28_onehot",
         ({"units": 128, "normalize": False, "shuffle": True}, {"units": 128, "normalize": True, "shuffle": True}),
         reference_entry="MyHyperModel",
         covers="HyperModel.fit declaring hparams (normalize, shuffle) and passing **kwargs on; one-hot labels"),
    Case("kt_fit_normalize.py", "digits28_raw",
         ({"units": 64, "normalize": True, "batch_size": 16}, {"units": 64, "normalize": True, "batch_size": 32}),
         reference_entry="PixelHyperModel",
         covers="HyperModel.fit that standardises raw pixels (train and validation) and tunes batch_size"),
    Case("kt_custom_training_loop.py", "digits28",
         ({"units": 64, "batch_size": 32, "learning_rate": 3e-3}, {"units": 64, "batch_size": 64, "learning_rate": 3e-3}),
         metric="my_metric", direction="min", reference_entry="MyHyperModel",
         covers="HyperModel.fit with a GradientTape loop reporting to callbacks and returning a float"),
    Case("kt_crop_fit_float.py", "digits28",
         ({"units": 64, "learning_rate": 3e-3}, {"units": 128, "learning_rate": 3e-3}),
         reference_entry="CroppedDigits", objective_from="last",
         covers="HyperModel.fit that crops (the model cannot take raw data) and returns a float"),
    Case("kt_hypermodel_args.py", "digits28",
         ({"units": 64, "learning_rate": 3e-3}, {"units": 128, "learning_rate": 3e-3}),
         entry="ImageHyperModel", entry_args={"input_shape": [28, 28], "num_classes": 10},
         covers="HyperModel class whose constructor takes arguments (entry_args)"),
    Case("kt_hypermodel_instance.py", "digits28x1_onehot",
         ({"conv_blocks": 1, "filters_0": 8, "pooling": "flatten", "learning_rate": 3e-3},
          {"conv_blocks": 1, "filters_0": 16, "pooling": "flatten", "learning_rate": 3e-3}),
         entry="hypermodel", covers="HyperModel instance at module level; conditional filters; one-hot labels"),
    Case("multilabel_classifier.py", "digits_multilabel",
         ({"units": 32, "learning_rate": 1e-2}, {"units": 64, "learning_rate": 1e-2}),
         metric="val_binary_accuracy", reference_entry="build_model",
         covers="multi-label (N, 4) targets, sigmoid + binary_crossentropy"),
    Case("structured_data_from_scratch.py", "heart", _lr(3e-3, 1e-2), reference_entry="model",
         bind_globals={"train_dataframe": "frame"},
         covers="keras.io structured data: one named Input per column, IntegerLookup/StringLookup adapted on "
                "the module global train_dataframe, string and integer categorical columns"),
    Case("structured_data_hp.py", "heart",
         ({"units": 32, "dropout_rate": 0.0, "learning_rate": 1e-2},
          {"units": 32, "dropout_rate": 0.25, "learning_rate": 1e-2}),
         reference_entry="build_model",
         covers="build_model(hp, data): named inputs, lookups adapted on the data given at build time"),
    Case("text_embedding_tokens.py", "review_tokens",
         ({"embedding_dim": 16, "learning_rate": 3e-2}, {"embedding_dim": 32, "learning_rate": 3e-2}),
         metric="val_binary_accuracy", reference_entry="build_model",
         covers="token ids into an Embedding with no Input (deferred shape), logit output"),
    Case("text_classification_from_scratch.py", "review_text", _lr(1e-2, 3e-2), entry="end_to_end_model",
         bind_globals={"train_dataframe": "frame"},
         covers="raw strings through TextVectorization adapted at module level; two module-level models"),
    Case("text_vectorization_hp.py", "review_text",
         ({"embedding_dim": 16, "learning_rate": 3e-2}, {"embedding_dim": 32, "learning_rate": 3e-2}),
         metric="val_binary_accuracy", reference_entry="build_model",
         covers="build_model(hp, data) adapting TextVectorization on the raw training texts, logit output"),
    Case("vit_small.py", "digits_rgb", _lr(3e-3, 1e-2), entry="create_vit_classifier",
         bind_globals={"x_train": "x"},
         covers="small ViT: Normalization.adapt(x_train) at module level, zero-argument builder, uncompiled logits"),
    Case("overfit_underfit.py", "higgs_like", _lr(3e-3, 1e-2), entry="small_model",
         covers="one of several module-level uncompiled models (input_shape= on Dense), one logit output"),
    Case("basic_regression_auto_mpg.py", "auto_mpg", _lr(0.03, 0.1), metric="val_loss", direction="min",
         entry="dnn_model", bind_globals={"train_features": "x"},
         covers="regression: Normalization adapted on train_features at module level, model compiled there"),
)

BY_NAME = {case.name: case for case in CASES}


def fingerprint(case: Case) -> str:
    """What a stored KerasTuner measurement of ``case`` depends on: its script, its configs and how they are
    scored, the epochs, the generated data and the reference harness. ``noise.json`` keeps it beside the
    measurement, and the corpus refuses a measurement whose fingerprint no longer matches."""
    import hashlib

    digest = hashlib.sha256(case.source.encode())
    digest.update(repr((case.dataset, case.configs, case.metric, case.direction, case.reference_entry,
                        sorted(case.entry_args.items()), sorted(case.bind_globals.items()), case.objective_from,
                        EPOCHS)).encode())
    for harness in ("data.py", "reference.py"):
        digest.update((Path(__file__).parent / harness).read_bytes())
    return digest.hexdigest()[:16]
