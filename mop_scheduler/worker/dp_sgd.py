"""DP-SGD for any compiled Keras 3 model (TensorFlow backend), without tensorflow-privacy.

``make_private(model, hparams, privacy_options, partition_rows)`` turns a compiled model into one that trains
privately under its ordinary ``model.fit(x, y, batch_size=b, ...)``, so roster builders and users' scripts
need no change. Two things change on the model instance (its class is swapped for a subclass; weights,
optimizer and checkpoint layout are untouched, so a private and a non-private config share checkpoints):

* ``fit`` feeds Poisson-subsampled batches: each of ``ceil(n / b)`` steps per epoch includes every row
  independently with probability ``q = b / n`` (so batch sizes vary). This is what the accountant in
  :mod:`hopper.engine.privacy` assumes; shuffled fixed-size batches would not match it.
* ``train_step`` computes per-example gradients with ``tf.vectorized_map`` (or per-microbatch gradients when
  ``microbatches`` is set), clips each to L2 norm C, sums them, adds N(0, sigma^2 C^2) to the sum and divides
  by the expected batch size ``b`` (by the number of microbatches in microbatch mode), then lets the
  compiled optimizer apply the result. Dividing by the expected rather than the drawn size keeps the
  batch size out of the released value (the drawn size depends on the data).

Two layers get a per-example-friendly implementation on private models (same forward numerics): Conv2D's
kernel gradient (TensorFlow's ``vectorized_map`` cannot batch Conv2DBackpropFilter and would loop over the
examples) and Dropout (Keras' seeded draw would give every example of a step the same mask). Layers that
mix examples (BatchNormalization) have no per-example gradient and are refused. The noise comes
from TensorFlow's PRNG, as in TensorFlow Privacy: fine for research and model selection, not a hardened
implementation against an adversary who can observe floating-point artefacts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hopper.engine import privacy
from hopper.engine.errors import ValidationError

_EPS = 1e-12


def _tf():  # noqa: ANN202
    import tensorflow as tf

    return tf


def _refuse_batch_mixing_layers(model) -> None:  # noqa: ANN001
    import keras

    mixing = (keras.layers.BatchNormalization,)
    for layer in _all_layers(model):
        if isinstance(layer, mixing):
            raise ValidationError(
                f"layer {layer.name!r} ({type(layer).__name__}) mixes the examples of a batch, so DP-SGD cannot "
                "clip per-example gradients; use LayerNormalization or GroupNormalization, or drop privacy",
                field="privacy")


def _all_layers(model):  # noqa: ANN001, ANN202
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        yield layer
        stack.extend(getattr(layer, "layers", []) or [])


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _vectorizable_conv2d(layer, inputs, kernel):  # noqa: ANN001, ANN202
    """Conv2D whose kernel gradient ``vectorized_map`` can batch.

    Why: TensorFlow's pfor has no converter for Conv2DBackpropFilter, so per-example gradients of a plain
    Conv2D run as a while_loop over the examples (5-7x slower than the rest of the step). Here the kernel
    gradient is a sum of one einsum per kernel tap over strided slices of the (explicitly padded) input,
    all ops pfor vectorizes; the forward pass is the same ``tf.nn.conv2d``, so predictions do not change.
    """
    tf = _tf()
    kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
    sh, sw = (int(v) for v in layer.strides)
    if layer.padding == "same":
        (t, b), (left, r) = (_same_padding(int(inputs.shape[1]), kh, sh),
                             _same_padding(int(inputs.shape[2]), kw, sw))
        inputs = tf.pad(inputs, [[0, 0], [t, b], [left, r], [0, 0]])

    @tf.custom_gradient
    def valid_conv(xp, k):  # noqa: ANN001, ANN202
        y = tf.nn.conv2d(xp, k, [1, sh, sw, 1], "VALID")

        def grad(gy):  # noqa: ANN001, ANN202
            gx = tf.nn.conv2d_transpose(gy, k, tf.shape(xp), [1, sh, sw, 1], "VALID")
            oh, ow = int(gy.shape[1]), int(gy.shape[2])
            taps = [tf.einsum("bhwi,bhwo->io", xp[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :], gy)
                    for i in range(kh) for j in range(kw)]
            return gx, tf.reshape(tf.stack(taps), tf.shape(k))

        return y, grad

    return valid_conv(inputs, tf.convert_to_tensor(kernel))


def _per_example_dropout(layer, inputs, training=False):  # noqa: ANN001, ANN202
    """Dropout with TensorFlow's stateful sampler, which ``vectorized_map`` draws once per example.

    Why: Keras' dropout is a stateless draw seeded from a SeedGenerator variable; inside ``vectorized_map``
    the seed is loop-invariant, so every example of a step would get the same mask.
    """
    if training and layer.rate > 0:
        return _tf().nn.dropout(inputs, rate=layer.rate)
    return inputs


def _use_vectorizable_layers(model) -> None:  # noqa: ANN001
    import functools

    import keras

    for layer in _all_layers(model):
        if type(layer) is keras.layers.Dropout and layer.noise_shape is None:
            layer.call = functools.partial(_per_example_dropout, layer)
        if (type(layer) is keras.layers.Conv2D and tuple(layer.dilation_rate) == (1, 1) and layer.groups == 1
                and layer.data_format == "channels_last" and layer.padding in ("same", "valid")):
            layer.convolution_op = functools.partial(_vectorizable_conv2d, layer)


class _PrivateTraining:
    """Mixed in front of the model's own class by :func:`make_model_private`."""

    # ---- data: Poisson subsampling --------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,  # noqa: ANN001, ANN201
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None,
            initial_epoch=0, steps_per_epoch=None, **kwargs: Any):
        tf = _tf()
        if y is None or isinstance(x, tf.data.Dataset) or not all(hasattr(a, "shape") for a in tf.nest.flatten(x)):
            raise ValidationError(
                "a private model trains from in-memory arrays fit(x, y, batch_size=...): DP-SGD's accounting "
                "needs Poisson-sampled batches, which Hopper draws itself; a tf.data.Dataset or generator "
                "cannot be resampled", field="privacy")
        if sample_weight is not None or class_weight is not None or validation_split:
            raise ValidationError("sample_weight, class_weight and validation_split are not supported with "
                                  "privacy (they would change the per-example sensitivity); pass "
                                  "validation_data instead", field="privacy")
        del shuffle, steps_per_epoch  # Poisson sampling replaces both
        b = int(batch_size or self._dp_batch_size)
        dataset, steps = poisson_batches(x, y, b, seed=int(np.random.randint(0, 2**31 - 1)))
        if float(b) != self._dp_expected_batch:
            # The expected batch size is a constant in the traced step; retracing (and re-vectorizing) costs
            # about a second, so only when it changed.
            self._dp_expected_batch = float(b)
            self.train_function = None
        history = super().fit(dataset, epochs=epochs, verbose=verbose, callbacks=callbacks,
                              validation_data=validation_data, initial_epoch=initial_epoch, shuffle=False,
                              steps_per_epoch=steps, **kwargs)
        n_rows = int(len(next(iter(tf.nest.flatten(x)))))
        ran = steps * (epochs - initial_epoch)
        self.dp_steps_taken += ran
        self.dp_events = (*self.dp_events, (privacy.sampling_rate(b, n_rows), self.dp_noise_multiplier, ran))
        return history

    # ---- the private step -----------------------------------------------------------------------------
    def _dp_clipped_sum(self, x, y):  # noqa: ANN001, ANN202
        """Sum over groups of each group's clipped gradient, plus per-row predictions and the mean loss.

        A group is one example (default) or one microbatch. Rows are padded with zero weight so that the
        shapes are static for ``vectorized_map`` and an empty Poisson batch still yields a (zero) sum.
        """
        tf = _tf()
        variables = self.trainable_variables
        clip = tf.constant(self._dp_l2_norm_clip, tf.float32)
        rows = tf.shape(tf.nest.flatten(x)[0])[0]
        m = self._dp_microbatches
        groups = tf.maximum(rows, 1) if m is None else tf.constant(m)
        per_group = tf.maximum((rows + groups - 1) // groups, 1)
        padded = groups * per_group
        mask = tf.cast(tf.range(padded) < rows, tf.float32)

        def pad_and_split(t):  # noqa: ANN001, ANN202
            pad = [[0, padded - rows]] + [[0, 0]] * (len(t.shape) - 1)
            t = tf.pad(t, pad)
            return tf.reshape(t, tf.concat([[groups, per_group], tf.shape(t)[1:]], 0))

        xs = tf.nest.map_structure(pad_and_split, x)
        ys = tf.nest.map_structure(pad_and_split, y)
        ws = tf.reshape(mask, [groups, per_group])

        def one_group(args):  # noqa: ANN001, ANN202
            xg, yg, wg = args
            real = tf.reduce_sum(wg)
            with tf.GradientTape() as tape:
                pred = self(xg, training=True) if self._call_has_training_arg else self(xg)
                # Keras' default reduction divides by all rows, padded ones included: rescale to the
                # mean over the real rows (0 for an all-padding group, whose gradient is then zero).
                loss = self._compute_loss(x=xg, y=yg, y_pred=pred, sample_weight=wg, training=True)
                loss = loss * tf.cast(per_group, loss.dtype) / tf.maximum(tf.cast(real, loss.dtype), 1.0)
                loss = loss * tf.cast(real > 0, loss.dtype)
            grads = tape.gradient(loss, variables)
            grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for g, v in zip(grads, variables, strict=True)]
            # tf.linalg.global_norm's L2Loss has no vectorized_map converter (it would fall back to a loop).
            norm = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(g)) for g in grads]))
            factor = clip / tf.maximum(norm, clip)  # clip_by_global_norm without its NaN guard's branch
            return [g * factor for g in grads], pred, loss, norm

        clipped, preds, losses, norms = tf.vectorized_map(one_group, (xs, ys, ws))
        summed = [tf.reduce_sum(g, axis=0) for g in clipped]
        preds = tf.nest.map_structure(
            lambda p: tf.reshape(p, tf.concat([[padded], tf.shape(p)[2:]], 0))[:rows], preds)
        real_per_group = tf.reduce_sum(ws, axis=1)
        mean_loss = tf.reduce_sum(losses * real_per_group) / tf.maximum(tf.cast(rows, tf.float32), 1.0)
        return summed, preds, mean_loss, norms

    def _dp_noisy_gradient(self, summed):  # noqa: ANN001, ANN202
        tf = _tf()
        std = self._dp_noise_multiplier * self._dp_l2_norm_clip
        denominator = float(self._dp_microbatches or self._dp_expected_batch)
        return [(s + tf.random.normal(tf.shape(s), stddev=std, dtype=s.dtype)) / denominator for s in summed]

    def train_step(self, data):  # noqa: ANN001, ANN201
        import keras

        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        summed, y_pred, loss, _ = self._dp_clipped_sum(x, y)
        grads = self._dp_noisy_gradient(summed)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=True))
        self._loss_tracker.update_state(loss, sample_weight=_tf().shape(_tf().nest.flatten(x)[0])[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=None)

    # ---- what the runner reads ------------------------------------------------------------------------
    @property
    def dp_noise_multiplier(self) -> float:
        return self._dp_noise_multiplier

    @property
    def dp_l2_norm_clip(self) -> float:
        return self._dp_l2_norm_clip


def make_model_private(model, *, l2_norm_clip: float, noise_multiplier: float, batch_size: int,  # noqa: ANN001, ANN201
                       microbatches: int | None = None):
    """Make a compiled Keras model train with DP-SGD under ``model.fit``; returns the same object.

    Why in place: the runner caches models between sub-epochs and checkpoints ``model.weights``; a wrapper
    model would change both. Calling it again only updates the parameters.
    """
    if getattr(model, "optimizer", None) is None:
        raise ValidationError("make_private needs a compiled model (call model.compile first)", field="privacy")
    if not l2_norm_clip > 0:
        raise ValidationError(f"privacy.l2_norm_clip must be > 0, got {l2_norm_clip}", field="privacy.l2_norm_clip")
    if not noise_multiplier >= 0:
        raise ValidationError(f"privacy.noise_multiplier must be >= 0, got {noise_multiplier}",
                              field="privacy.noise_multiplier")
    if microbatches is not None and microbatches < 1:
        raise ValidationError(f"privacy.microbatches must be >= 1, got {microbatches}", field="privacy.microbatches")
    settings = (float(l2_norm_clip), float(noise_multiplier), None if microbatches is None else int(microbatches),
                int(batch_size))
    if isinstance(model, _PrivateTraining) and getattr(model, "_dp_settings", None) == settings:
        # The runner calls this before every sub-epoch of a cached model: keep its traced step (retracing
        # and re-vectorizing costs about a second) when nothing changed.
        return model
    _refuse_batch_mixing_layers(model)
    _use_vectorizable_layers(model)
    cls = type(model)
    if not isinstance(model, _PrivateTraining):
        model.__class__ = type(f"Private{cls.__name__}", (_PrivateTraining, cls), {})
        model.dp_steps_taken = 0
        model.dp_events = ()
    model._dp_l2_norm_clip = float(l2_norm_clip)
    model._dp_noise_multiplier = float(noise_multiplier)
    model._dp_microbatches = None if microbatches is None else int(microbatches)
    model._dp_batch_size = int(batch_size)
    model._dp_expected_batch = float(batch_size)
    model._dp_settings = settings
    # XLA would recompile for every distinct Poisson batch size; the traced graph takes any size.
    model.jit_compile = False
    model.train_function = None
    return model


def make_private(model, hparams: Mapping[str, Any], privacy_options: Mapping[str, Any], partition_rows: int,  # noqa: ANN001, ANN201
                 *, max_epochs: int | None = None):
    """The sub-epoch runner's entry point: resolve the noise (see :func:`hopper.engine.privacy.plan`) and
    make ``model`` train privately. ``model.dp_steps_taken`` / ``model.dp_events`` then grow with each fit.

    ``privacy_options`` is the workload's ``PrivacySpec.model_dump()``; ``partition_rows`` the rows of the
    partition this sub-epoch trains on; ``max_epochs`` the workload's (needed only with ``target_epsilon``;
    the scheduler should rather resolve sigma once per config and pass it as ``hparams["noise_multiplier"]``).
    """
    plan = privacy.plan(privacy_options, hparams, partition_rows=partition_rows, max_epochs=max_epochs)
    return make_model_private(model, l2_norm_clip=plan.l2_norm_clip, noise_multiplier=plan.noise_multiplier,
                              batch_size=int(hparams.get("batch_size", 32)), microbatches=plan.microbatches)


def poisson_batches(x, y, batch_size: int, *, seed: int):  # noqa: ANN001, ANN201
    """A ``tf.data.Dataset`` of ``ceil(n / batch_size)`` batches per pass, each row in each batch with
    probability ``batch_size / n``, independently; returns ``(dataset, steps_per_pass)``.

    Each pass over the dataset (each Keras epoch) draws fresh batches from a generator seeded from ``seed``.
    """
    tf = _tf()
    x_np = tf.nest.map_structure(np.asarray, x)
    y_np = tf.nest.map_structure(np.asarray, y)
    n = int(len(tf.nest.flatten(x_np)[0]))
    q = privacy.sampling_rate(batch_size, n)
    steps = privacy.steps_per_sub_epoch(n, batch_size)
    passes = [0]

    def generate():  # noqa: ANN202
        rng = np.random.default_rng([seed, passes[0]])
        passes[0] += 1
        for _ in range(steps):
            idx = np.flatnonzero(rng.random(n) < q)
            yield (tf.nest.map_structure(lambda a, i=idx: a[i], x_np), tf.nest.map_structure(lambda a, i=idx: a[i], y_np))

    def spec(a):  # noqa: ANN001, ANN202
        return tf.TensorSpec((None, *a.shape[1:]), tf.as_dtype(a.dtype))

    signature = (tf.nest.map_structure(spec, x_np), tf.nest.map_structure(spec, y_np))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature).repeat()
    return dataset.prefetch(2), steps

