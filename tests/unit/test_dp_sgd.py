"""DP-SGD in Keras 3 (hopper.mop_scheduler.worker.dp_sgd): clipping, noise, sampling and training, with real TF."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
import tensorflow as tf  # noqa: E402

from hopper.engine import privacy  # noqa: E402
from hopper.engine.errors import ValidationError  # noqa: E402
from hopper.mop_scheduler.worker.dp_sgd import make_model_private, make_private, poisson_batches  # noqa: E402


def _tiny(seed=0, units=5, optimizer=None):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation="tanh"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _brute_force(model, x, y, groups):
    """Loop over examples (or microbatches), one tape each: their gradients and global norms."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    grads, norms = [], []
    for idx in groups:
        with tf.GradientTape() as tape:
            loss = loss_fn(y[idx], model(x[idx], training=True))
        g = tape.gradient(loss, model.trainable_variables)
        grads.append([t.numpy() for t in g])
        norms.append(float(tf.linalg.global_norm(g)))
    return grads, norms


def _tiny_cnn(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((7, 7, 2)),
                              keras.layers.Conv2D(3, 3, padding="same", activation="tanh"),
                              keras.layers.Conv2D(4, (3, 2), strides=2, padding="valid", activation="tanh"),
                              keras.layers.Conv2D(2, 2, strides=(1, 2), padding="same"),
                              keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize(("build", "shape", "microbatches"),
                         [(_tiny, (4,), None), (_tiny, (4,), 3), (_tiny_cnn, (7, 7, 2), None)])
def test_clipped_sum_matches_a_per_example_loop(build, shape, microbatches, caplog):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, *shape)).astype(np.float32) * 3
    y = rng.integers(0, 3, size=10)
    model = build()
    # The reference is an untouched copy: make_private swaps Conv2D's gradient for a vectorizable one.
    reference = build()
    reference.set_weights(model.get_weights())
    # Microbatches are contiguous blocks of ceil(10 / 3) = 4 rows: [0:4], [4:8], [8:10].
    groups = [[i] for i in range(10)] if microbatches is None else [list(range(0, 4)), list(range(4, 8)), [8, 9]]
    per_group, expected_norms = _brute_force(reference, x, y, groups)
    # A clip between the norms binds for some groups and not others, so the test tells clipping from none.
    clip = float(np.median(expected_norms))
    assert min(expected_norms) < clip < max(expected_norms)
    expected = [sum(g[k] * min(1.0, clip / n) for g, n in zip(per_group, expected_norms, strict=True))
                for k in range(len(per_group[0]))]
    make_model_private(model, l2_norm_clip=clip, noise_multiplier=0.0, batch_size=10, microbatches=microbatches)
    summed, preds, loss, norms = tf.function(model._dp_clipped_sum)(tf.constant(x), tf.constant(y))
    # vectorized_map falls back to a per-example while_loop (and says so) for an op it cannot batch.
    assert not [r.getMessage() for r in caplog.records if "while_loop" in r.getMessage()]
    np.testing.assert_allclose(norms.numpy()[:len(groups)], expected_norms, rtol=1e-4)
    for got, want in zip(summed, expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(preds.numpy(), reference(x).numpy(), rtol=1e-5, atol=1e-7)
    assert float(loss) == pytest.approx(float(keras.losses.SparseCategoricalCrossentropy()(y, reference(x))), rel=1e-4)


def test_empty_poisson_batch_is_a_noise_only_step():
    model = _tiny()
    make_model_private(model, l2_norm_clip=1.0, noise_multiplier=0.0, batch_size=4)
    summed, preds, loss, _ = model._dp_clipped_sum(tf.zeros((0, 4)), tf.zeros((0,), tf.int64))
    assert all(float(tf.reduce_max(tf.abs(s))) == 0.0 for s in summed) and preds.shape[0] == 0
    assert float(loss) == 0.0


def test_a_train_step_adds_gaussian_noise_of_the_right_scale():
    """One real train step with plain SGD(lr=1): update = -(clipped sum + noise) / b, so the noise is
    recovered exactly from the weights; its mean and variance must match N(0, (sigma C)^2)."""
    clip, sigma, b = 0.7, 1.3, 8
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((50,)), keras.layers.Dense(200), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="sparse_categorical_crossentropy")
    make_model_private(model, l2_norm_clip=clip, noise_multiplier=sigma, batch_size=b)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(b, 50)).astype(np.float32))
    y = tf.constant(rng.integers(0, 3, size=b))
    summed, _, _, _ = model._dp_clipped_sum(x, y)
    before = [v.numpy().copy() for v in model.trainable_variables]
    model.train_step((x, y))
    noise = np.concatenate([(-(v.numpy() - w0) * b - s.numpy()).ravel()
                            for v, w0, s in zip(model.trainable_variables, before, summed, strict=True)])
    n, std = noise.size, sigma * clip  # ~10k draws
    assert abs(noise.mean()) < 5 * std / np.sqrt(n)
    assert noise.var() == pytest.approx(std**2, rel=5 * np.sqrt(2 / n))


def test_poisson_batches_include_each_row_with_probability_q():
    x = np.arange(400, dtype=np.float32)[:, None]
    y = np.zeros(400, np.int64)
    dataset, steps = poisson_batches(x, y, 20, seed=3)
    assert steps == privacy.steps_per_sub_epoch(400, 20) == 20
    counts = np.zeros(400)
    sizes = []
    for xb, _ in dataset.take(steps * 10):
        counts[xb.numpy()[:, 0].astype(int)] += 1
        sizes.append(len(xb))
    q = 20 / 400
    trials = steps * 10
    assert len(set(sizes)) > 3  # Poisson, not fixed-size batches
    assert np.mean(sizes) == pytest.approx(20, rel=0.1)
    # every row's inclusion count is Binomial(trials, q): check the spread across rows too
    assert counts.mean() == pytest.approx(trials * q, rel=0.05)
    assert counts.var() == pytest.approx(trials * q * (1 - q), rel=0.3)


def test_private_model_learns_digits_through_plain_fit():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from hopper.mop_scheduler.worker.factory import ModelFactory

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_tr, x_va, y_tr, y_va = train_test_split(x, digits.target, test_size=0.25, random_state=0)
    hparams = {"units": 64, "lr": 0.05, "optimizer": "sgd", "momentum": 0.9, "batch_size": 64}
    keras.utils.set_random_seed(0)
    model = ModelFactory("mlp", (64,), 10, "classification").build(hparams)
    options = {"l2_norm_clip": 1.0, "noise_multiplier": 1.0, "delta": 1e-5}
    private = make_private(model, hparams, options, partition_rows=len(x_tr), max_epochs=8)
    assert private is model
    model.fit(x_tr, y_tr, batch_size=64, epochs=8, shuffle=True, verbose=0)  # the runner's call, unchanged
    accuracy = float(np.mean(model.predict(x_va, verbose=0).argmax(1) == y_va))
    steps = privacy.steps_per_sub_epoch(len(x_tr), 64)
    assert model.dp_steps_taken == 8 * steps
    eps = privacy.epsilon_of_events(model.dp_events, 1e-5)
    assert eps == pytest.approx(privacy.epsilon(64 / len(x_tr), 1.0, 8 * steps, 1e-5))
    assert accuracy > 0.6, (accuracy, eps)  # chance is 0.1


def test_refusals_name_the_problem():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization()])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValidationError, match="BatchNormalization"):
        make_model_private(model, l2_norm_clip=1.0, noise_multiplier=1.0, batch_size=4)
    model = _tiny()
    with pytest.raises(ValidationError, match="l2_norm_clip"):
        make_model_private(model, l2_norm_clip=0.0, noise_multiplier=1.0, batch_size=4)
    make_model_private(model, l2_norm_clip=1.0, noise_multiplier=1.0, batch_size=4)
    with pytest.raises(ValidationError, match="Poisson"):
        model.fit(tf.data.Dataset.from_tensor_slices((np.zeros((4, 4)), np.zeros(4))).batch(2))


def test_dropout_draws_one_mask_per_example_and_none_at_inference(caplog):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((50,)), keras.layers.Dropout(0.5), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    make_model_private(model, l2_norm_clip=1.0, noise_multiplier=0.0, batch_size=4)
    x, y = tf.ones((4, 50)), tf.zeros((4,), tf.int64)
    _, preds, _, _ = tf.function(model._dp_clipped_sum)(x, y)
    # Keras' own dropout would give these identical rows one shared mask inside vectorized_map.
    assert len({tuple(np.round(p, 6)) for p in preds.numpy()}) == 4
    assert not [r.getMessage() for r in caplog.records if "while_loop" in r.getMessage()]
    inference = model.predict(x.numpy(), verbose=0)
    np.testing.assert_allclose(inference, np.repeat(inference[:1], 4, axis=0))


def test_private_and_plain_models_share_the_checkpoint_layout(tmp_path):
    from hopper.mop_scheduler.worker.checkpoints import load_checkpoint, save_checkpoint

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 3, size=64)
    private = make_model_private(_tiny(optimizer=keras.optimizers.Adam(1e-2)), l2_norm_clip=1.0,
                                 noise_multiplier=0.5, batch_size=16)
    private.fit(x, y, batch_size=16, epochs=1, verbose=0)
    save_checkpoint(private, tmp_path / "c")
    plain = _tiny(seed=1, optimizer=keras.optimizers.Adam(1e-2))
    plain.fit(x, y, batch_size=16, epochs=1, verbose=0)  # builds the optimizer's slots
    assert load_checkpoint(plain, tmp_path / "c")  # weights and optimizer state both fit
    np.testing.assert_allclose(plain.predict(x, verbose=0), private.predict(x, verbose=0), rtol=1e-6)
