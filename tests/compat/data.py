"""Small datasets of the shapes the compatibility corpus expects, written as files ``POST /datasets`` registers.

Every generator is deterministic (seeded) and learnable in two epochs on a few hundred rows, so that a
script's validation metric is well above chance and a wrong evaluation path (raw data where the script
normalised, probabilities where it emits logits) shows as a large gap rather than hiding in noise.
Each returns a ``Generated``: the file, the ``DatasetSpec`` fields to register it with, and the arrays
the reference (KerasTuner) trains on, split into training and validation rows exactly as Hopper splits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

#: Hopper's default split (``DatasetSpec.validation_fraction`` / ``seed``); the reference uses the same rows.
VALIDATION_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass
class Generated:
    """A dataset file plus what the reference needs to train on the same rows."""

    path: Path
    spec: dict[str, Any]
    x: Any  # ndarray, or a dict of column arrays (typed tabular data)
    y: np.ndarray
    frame: Any = None  # the pandas frame of tabular sources
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return len(self.y)

    def split(self) -> tuple[tuple[Any, np.ndarray], tuple[Any, np.ndarray]]:
        """(x_train, y_train), (x_val, y_val) with the rows Hopper's ``split_and_partition`` holds out.

        Mirrors ``hopper.engine.data.split_and_partition``: one seeded permutation, the first
        ``round(n * fraction)`` rows are validation. The test checks Hopper's ``n_validation`` against it.
        """
        order = np.random.default_rng(SPLIT_SEED).permutation(self.n_rows)
        n_val = max(1, int(round(self.n_rows * VALIDATION_FRACTION)))
        val, train = order[:n_val], order[n_val:]
        return (_take(self.x, train), self.y[train]), (_take(self.x, val), self.y[val])

    def train_frame(self) -> Any:
        """The training rows of a tabular source as a DataFrame (what a script's ``train_dataframe`` holds)."""
        order = np.random.default_rng(SPLIT_SEED).permutation(self.n_rows)
        n_val = max(1, int(round(self.n_rows * VALIDATION_FRACTION)))
        return self.frame.iloc[order[n_val:]].reset_index(drop=True)


def _take(x: Any, rows: np.ndarray) -> Any:
    if isinstance(x, dict):
        return {k: v[rows] for k, v in x.items()}
    return x[rows]


@cache
def _digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(13)
    rows = np.sort(rng.choice(len(digits.target), size=n, replace=False))
    return digits.images[rows].astype(np.float32) / 16.0, digits.target[rows].astype(np.int64)


def _upscale_28(images: np.ndarray) -> np.ndarray:
    """8x8 digits as 28x28 pictures (3x nearest-neighbour upscaling, centred with a 2-pixel border like MNIST)."""
    big = np.kron(images, np.ones((3, 3), dtype=np.float32))
    return np.pad(big, ((0, 0), (2, 2), (2, 2)))


def _save_npz(path: Path, **arrays: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def _one_hot(y: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[y]


N_IMAGES = 500


def digits28(root: Path) -> Generated:
    """MNIST-shaped greyscale pictures in [0, 1], integer labels (TF's "Basic classification" shape)."""
    images, y = _digits(N_IMAGES)
    x = _upscale_28(images)
    return Generated(_save_npz(root / "digits28.npz", x=x, y=y), {"format": "npz"}, x, y)


def digits28_raw(root: Path) -> Generated:
    """The same pictures as raw 0..255 pixel values: a script's ``fit`` is expected to normalise them."""
    images, y = _digits(N_IMAGES)
    x = np.round(_upscale_28(images) * 255.0).astype(np.float32)
    return Generated(_save_npz(root / "digits28_raw.npz", x=x, y=y), {"format": "npz"}, x, y)


def digits28_onehot(root: Path) -> Generated:
    """28x28 pictures with one-hot labels, as ``keras.utils.to_categorical`` makes them (KerasTuner's guides)."""
    images, labels = _digits(N_IMAGES)
    x, y = _upscale_28(images), _one_hot(labels, 10)
    return Generated(_save_npz(root / "digits28_onehot.npz", x=x, y=y), {"format": "npz"}, x, y)


def digits28x1_onehot(root: Path) -> Generated:
    """``(N, 28, 28, 1)`` pictures with one-hot labels (keras.io "Simple MNIST convnet")."""
    images, labels = _digits(N_IMAGES)
    x, y = _upscale_28(images)[..., None], _one_hot(labels, 10)
    return Generated(_save_npz(root / "digits28x1_onehot.npz", x=x, y=y), {"format": "npz"}, x, y)


def digits784(root: Path) -> Generated:
    """Flattened 784-value rows (keras.io "Training & evaluation with the built-in methods")."""
    images, y = _digits(N_IMAGES)
    x = _upscale_28(images).reshape(len(y), 784)
    return Generated(_save_npz(root / "digits784.npz", x=x, y=y), {"format": "npz"}, x, y)


def digits_rgb(root: Path) -> Generated:
    """16x16 colour pictures (a CIFAR-like shape for the small Vision Transformer), tinted per row."""
    images, y = _digits(N_IMAGES)
    big = np.kron(images, np.ones((2, 2), dtype=np.float32))
    tint = np.random.default_rng(5).uniform(0.5, 1.0, size=(len(y), 1, 1, 3)).astype(np.float32)
    x = np.round(big[..., None] * tint * 255.0).astype(np.float32)
    return Generated(_save_npz(root / "digits_rgb.npz", x=x, y=y), {"format": "npz"}, x, y)


def digits_multilabel(root: Path) -> Generated:
    """64 pixel features, four independent yes/no labels per row: even, >= 5, prime, has a closed loop."""
    images, labels = _digits(N_IMAGES)
    x = images.reshape(len(labels), 64)
    y = np.stack([labels % 2 == 0, labels >= 5, np.isin(labels, [2, 3, 5, 7]), np.isin(labels, [0, 6, 8, 9])],
                 axis=1).astype(np.float32)
    return Generated(_save_npz(root / "digits_multilabel.npz", x=x, y=y), {"format": "npz"}, x, y)


HEART_COLUMNS = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak", "slope",
                 "ca", "thal"]
HEART_INT_CATEGORICAL = ["sex", "cp", "fbs", "restecg", "exang", "ca"]
HEART_STRING_CATEGORICAL = ["thal"]
HEART_NUMERIC = ["age", "trestbps", "chol", "thalach", "oldpeak", "slope"]


def heart(root: Path, n: int = 400) -> Generated:
    """A CSV shaped like the Cleveland heart-disease file keras.io's structured-data example reads.

    Integer, float and string columns; the target follows a noisy rule over the string column ``thal``,
    the integer categorical ``cp``/``ca``/``exang`` and the numeric ``thalach``/``oldpeak``, so a model that
    sees the categorical columns does clearly better than one that does not.
    """
    import pandas as pd

    rng = np.random.default_rng(21)
    frame = pd.DataFrame({
        "age": rng.integers(29, 78, n),
        "sex": rng.integers(0, 2, n),
        "cp": rng.integers(0, 5, n),
        "trestbps": rng.integers(94, 200, n),
        "chol": rng.integers(126, 420, n),
        "fbs": (rng.random(n) < 0.15).astype(int),
        "restecg": rng.integers(0, 3, n),
        "thalach": rng.integers(71, 202, n),
        "exang": rng.integers(0, 2, n),
        "oldpeak": np.round(rng.gamma(1.2, 0.9, n), 1),
        "slope": rng.integers(1, 4, n),
        "ca": rng.integers(0, 4, n),
        "thal": rng.choice(["normal", "fixed", "reversible"], n, p=[0.55, 0.1, 0.35]),
    })
    logit = (2.2 * (frame["thal"] == "reversible") + 1.0 * (frame["thal"] == "fixed") + 1.4 * (frame["cp"] >= 3)
             + 0.8 * frame["ca"] + 1.0 * frame["exang"] - 0.025 * (frame["thalach"] - 150)
             + 0.5 * frame["oldpeak"])
    # centred on its median: about as many sick as healthy rows, as in the real file
    frame["target"] = (logit - logit.median() + rng.logistic(0, 0.5, n) > 0).astype(int)
    path = root / "heart.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    x = {c: frame[c].to_numpy() for c in HEART_COLUMNS}
    return Generated(path, {"format": "csv", "label_column": "target"}, x, frame["target"].to_numpy(), frame=frame)


POSITIVE_WORDS = ["great", "excellent", "wonderful", "loved", "brilliant", "superb", "enjoyable", "moving"]
NEGATIVE_WORDS = ["awful", "boring", "terrible", "hated", "dull", "waste", "poor", "disappointing"]
FILLER_WORDS = ("the a an film movie story plot actor actress scene music ending was is it this that and but "
                "with of to in very really quite somewhat rather long short old new first last some many "
                "character director script camera screen time people watch night cinema sequel series").split()


def _reviews(n: int, seed: int) -> tuple[list[list[str]], np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    docs = []
    for label in labels:
        words = list(rng.choice(FILLER_WORDS, rng.integers(8, 20)))
        # four to seven class-bearing words and at most one of the other class: learnable in two short
        # epochs, not trivial
        own = POSITIVE_WORDS if label else NEGATIVE_WORDS
        other = NEGATIVE_WORDS if label else POSITIVE_WORDS
        for word in [*rng.choice(own, rng.integers(4, 8)), *rng.choice(other, rng.integers(0, 2))]:
            words.insert(int(rng.integers(0, len(words) + 1)), str(word))
        docs.append([str(w) for w in words])
    return docs, labels.astype(np.int64)


TOKENS_VOCAB = 500
TOKENS_LEN = 40


def review_tokens(root: Path, n: int = 500) -> Generated:
    """IMDB-style token ids (``keras.datasets.imdb`` + ``pad_sequences``): ``(N, 40)`` ints, 0 = padding."""
    docs, y = _reviews(n, 31)
    vocab = {w: i + 3 for i, w in enumerate(POSITIVE_WORDS + NEGATIVE_WORDS + FILLER_WORDS)}  # 0 pad, 1 start, 2 oov
    # Spread the ids over the whole vocabulary as IMDB's frequency ranks are, so the embedding table is used.
    spread = {w: (i * 37) % (TOKENS_VOCAB - 3) + 3 for w, i in vocab.items()}
    x = np.zeros((n, TOKENS_LEN), dtype=np.int32)
    for row, doc in enumerate(docs):
        ids = [1] + [spread[w] for w in doc]
        ids = ids[:TOKENS_LEN]
        x[row, TOKENS_LEN - len(ids):] = ids  # pad_sequences pads at the front by default
    assert x.max() > 255  # Hopper keeps integer features as int32 only above 255 (else they look like pixels)
    return Generated(_save_npz(root / "review_tokens.npz", x=x, y=y), {"format": "npz"}, x, y)


def review_text(root: Path, n: int = 500) -> Generated:
    """Raw review strings with a 0/1 label in a CSV (keras.io "Text classification from scratch" style)."""
    import pandas as pd

    docs, y = _reviews(n, 41)
    text = [" ".join(doc).capitalize() + "." for doc in docs]
    frame = pd.DataFrame({"text": text, "label": y})
    path = root / "review_text.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return Generated(path, {"format": "csv", "label_column": "label"}, np.asarray(text, dtype=object), y, frame=frame)


HIGGS_FEATURES = 28


def higgs_like(root: Path, n: int = 500) -> Generated:
    """28 float features and a 0/1 label from a nonlinear rule (TF's "Overfit and underfit" Higgs shape)."""
    import pandas as pd

    rng = np.random.default_rng(51)
    x = rng.normal(size=(n, HIGGS_FEATURES)).astype(np.float32)
    score = x[:, 0] * x[:, 1] + np.sin(2 * x[:, 2]) + 0.8 * x[:, 3] - 0.6 * x[:, 4] ** 2 + 0.6
    y = (score + rng.normal(0, 0.5, n) > 0).astype(np.int64)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(HIGGS_FEATURES)])
    frame["label"] = y
    path = root / "higgs_like.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.6f")
    x = frame[[f"f{i}" for i in range(HIGGS_FEATURES)]].to_numpy(dtype=np.float32)  # as read back from the CSV
    return Generated(path, {"format": "csv", "label_column": "label"}, x, y, frame=frame)


MPG_FEATURES = ["Cylinders", "Displacement", "Horsepower", "Weight", "Acceleration", "Model Year", "Europe",
                "Japan", "USA"]


def auto_mpg(root: Path, n: int = 400) -> Generated:
    """Fuel efficiency from car features (TF's "Basic regression" Auto MPG shape, origin one-hot)."""
    import pandas as pd

    rng = np.random.default_rng(61)
    cylinders = rng.choice([4, 6, 8], n, p=[0.5, 0.25, 0.25])
    displacement = cylinders * rng.uniform(18, 45, n)
    horsepower = displacement * rng.uniform(0.35, 0.6, n) + 20
    weight = 1500 + displacement * rng.uniform(6, 9, n)
    acceleration = rng.uniform(8, 25, n)
    year = rng.integers(70, 83, n)
    origin = rng.integers(0, 3, n)
    mpg = (46 - 0.006 * weight - 0.05 * horsepower + 0.7 * (year - 70) + 1.5 * (origin > 0)
           + rng.normal(0, 1.5, n))
    frame = pd.DataFrame({"Cylinders": cylinders, "Displacement": np.round(displacement, 1),
                          "Horsepower": np.round(horsepower, 1), "Weight": np.round(weight, 0),
                          "Acceleration": np.round(acceleration, 1), "Model Year": year,
                          "Europe": (origin == 1).astype(float), "Japan": (origin == 2).astype(float),
                          "USA": (origin == 0).astype(float), "MPG": np.round(mpg, 1)})
    path = root / "auto_mpg.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    x = frame[MPG_FEATURES].to_numpy(dtype=np.float32)
    return Generated(path, {"format": "csv", "label_column": "MPG", "task": "regression"}, x,
                     frame["MPG"].to_numpy(dtype=np.float32), frame=frame)


GENERATORS: dict[str, Callable[[Path], Generated]] = {
    f.__name__: f for f in (digits28, digits28_raw, digits28_onehot, digits28x1_onehot, digits784, digits_rgb,
                            digits_multilabel, heart, review_tokens, review_text, higgs_like, auto_mpg)
}


def generate(name: str, root: Path) -> Generated:
    """Write dataset ``name`` under ``root`` and return it with its registration spec (``name``/``path`` set)."""
    made = GENERATORS[name](root)
    made.spec = {"name": name, "path": str(made.path), **made.spec}
    return made
