"""Transformer-encoder text classifiers with BERT-base and DistilBERT sizes (random init, no hub)."""

from __future__ import annotations

TINY = {"layers": 2, "hidden": 64, "heads": 2, "intermediate": 128, "vocab_size": 1000}
BERT_BASE = {"layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072, "vocab_size": 30522}
DISTILBERT = {"layers": 6, "hidden": 768, "heads": 12, "intermediate": 3072, "vocab_size": 30522}


def encoder_sizes(config: dict, base: dict) -> dict:
    """Sizes from the preset, overridden by explicit hparams (``preset: tiny`` for tests)."""
    preset = TINY if config.get("preset") == "tiny" else base
    explicit = {k: config[k] for k in base if config.get(k) is not None and config.get("preset") != "tiny"}
    return {**preset, **explicit}


def _build_encoder(config: dict, input_shape: tuple, n_outputs: int, task: str, base: dict, name: str,
                   label_kind: str | None = None):  # noqa: ANN202
    import keras

    from hopper.roster._compile import compile_for_task, maybe_load_weights, output_layer

    sizes = encoder_sizes(config, base)
    seq_len = int(input_shape[0])
    hidden, heads = int(sizes["hidden"]), int(sizes["heads"])
    tokens = keras.Input(shape=(seq_len,), dtype="int32", name="features")
    x = keras.layers.Embedding(int(sizes["vocab_size"]), hidden, name="token_embedding")(tokens)
    positions = keras.ops.arange(seq_len)
    x = x + keras.layers.Embedding(seq_len, hidden, name="position_embedding")(positions)
    x = keras.layers.LayerNormalization(epsilon=1e-12)(x)
    dropout = float(config.get("dropout") or 0.0)
    for i in range(int(sizes["layers"])):
        attn = keras.layers.MultiHeadAttention(heads, hidden // heads, dropout=dropout, name=f"attention_{i}")(x, x)
        x = keras.layers.LayerNormalization(epsilon=1e-12)(x + attn)
        ff = keras.layers.Dense(int(sizes["intermediate"]), activation="gelu")(x)
        ff = keras.layers.Dense(hidden)(ff)
        if dropout:
            ff = keras.layers.Dropout(dropout)(ff)
        x = keras.layers.LayerNormalization(epsilon=1e-12)(x + ff)
    pooled = keras.layers.Dense(hidden, activation="tanh", name="pooler")(x[:, 0, :])
    model = keras.Model(tokens, output_layer(n_outputs, task, label_kind)(pooled), name=name)
    maybe_load_weights(model, config)
    compile_for_task(model, config, task, label_kind)
    return model


def build_bert_base(config: dict, input_shape: tuple, n_outputs: int, task: str, label_kind: str | None = None):  # noqa: ANN201
    return _build_encoder(config, input_shape, n_outputs, task, BERT_BASE, "bert_base", label_kind)


def build_distilbert(config: dict, input_shape: tuple, n_outputs: int, task: str, label_kind: str | None = None):  # noqa: ANN201
    return _build_encoder(config, input_shape, n_outputs, task, DISTILBERT, "distilbert", label_kind)
