"""The attention encoder-decoder of the translation pipeline, its inference models and decoding.

Training model (teacher forcing: the decoder reads the reference shifted right by one)::

    source ids (B, S) -> Embedding(mask_zero) [-> Dropout] -> Bidirectional(LSTM(H/2), return_state)
        -> e_1..e_S (B, S, H),  h_0 = [h_fwd | h_bwd],  c_0 = [c_fwd | c_bwd]
    target ids (B, T), <begin> first -> Embedding(mask_zero) [-> Dropout] -> LSTM(H) from (h_0, c_0)
        -> d_1..d_T
    a_t = softmax_s(d_t · e_s)   c_t = Σ_s a_ts e_s            Luong "dot" attention (Attention)
    h̃_t = tanh([d_t | c_t] · W_c + b_c)                         the attentional state (Dense)
    p(y_t | y_<t, x) = softmax(dropout(h̃_t) · W_s + b_s)        Dense(V, softmax)

(Luong, Pham and Manning, 2015.) With `dropout` > 0, training zeroes each embedded token's
features and each attentional state's with that probability (Dropout layers; the identity at
inference, so the inference models leave them out). Every layer is one of lstmfast's Keras layers with a name, so
that the inference models below take the trained layers by name from a loaded model.

Inference: the encoder model maps the source to (e, h_0, c_0); the decoder model takes one
token per sentence, e and (h, c) and returns p(y_t | …) and the next (h, c). Padded source
steps come out of the encoder as zero vectors, and a Masking layer in the decoder model masks
them out of the attention again, as the source mask did in training.
"""

from __future__ import annotations

import numpy as np

__all__ = ["build_attention_model", "inference_models", "greedy_decode", "beam_decode"]


def build_attention_model(source_size, target_input_size, target_size, embedding_dim, units, learning_rate,
                          dropout=0.0):
    """The compiled training model: inputs [source ids, target ids with <begin>], output p."""
    from ..initializers import RandomNormal
    from ..layers import LSTM, Attention, Bidirectional, Concatenate, Dense, Dropout, Embedding, Input
    from ..models import Model
    from ..optimizers import Adam

    if units % 2:
        raise ValueError(f"units must be even (each encoder direction has units/2); got {units}")
    source = Input(shape=(None,), dtype="int32", name="source")
    target = Input(shape=(None,), dtype="int32", name="target")
    # Embeddings drawn from N(0, 1) (as PyTorch's nn.Embedding), not Keras's U(−0.05, 0.05): the
    # first epochs then learn far faster (docs/pipelines.md).
    encoded = Embedding(source_size, embedding_dim, mask_zero=True, name="source_embedding",
                        embeddings_initializer=RandomNormal(stddev=1.0))(source)
    if dropout:
        encoded = Dropout(dropout, name="source_dropout")(encoded)
    memory, hf, cf, hb, cb = Bidirectional(LSTM(units // 2, return_sequences=True, return_state=True),
                                           name="encoder")(encoded)
    h0 = Concatenate(name="encoder_h")([hf, hb])
    c0 = Concatenate(name="encoder_c")([cf, cb])
    embedded = Embedding(target_input_size, embedding_dim, mask_zero=True, name="target_embedding",
                         embeddings_initializer=RandomNormal(stddev=1.0))(target)
    if dropout:
        embedded = Dropout(dropout, name="target_dropout")(embedded)
    decoded, _, _ = LSTM(units, return_sequences=True, return_state=True, name="decoder")(
        embedded, initial_state=[h0, c0])
    context = Attention(name="attention")([decoded, memory])
    both = Concatenate(name="decoder_and_context")([decoded, context])
    attentional = Dense(units, activation="tanh", name="attentional")(both)
    if dropout:
        attentional = Dropout(dropout, name="attentional_dropout")(attentional)
    probs = Dense(target_size, activation="softmax", name="next_token")(attentional)
    model = Model([source, target], probs, name="translator")
    model.compile(optimizer=Adam(learning_rate=learning_rate), loss="sparse_categorical_crossentropy")
    return model


def inference_models(model):
    """(encoder, decoder) models sharing the trained layers of `model` (fresh or loaded)."""
    from ..layers import Input, Masking
    from ..models import Model

    layer = model.get_layer
    memory, hf, cf, hb, cb = layer("encoder").output
    encoder = Model(model.inputs[0], [memory, layer("encoder_h").output, layer("encoder_c").output],
                    name="translator_encoder")
    units = layer("decoder").units
    token = Input(shape=(None,), dtype="int32", name="token")
    memory_in = Input(shape=(None, units), name="memory")
    h, c = Input(shape=(units,), name="h"), Input(shape=(units,), name="c")
    decoded, h1, c1 = layer("decoder")(layer("target_embedding")(token), initial_state=[h, c])
    context = layer("attention")([decoded, Masking(0.0, name="source_padding")(memory_in)])
    probs = layer("next_token")(layer("attentional")(layer("decoder_and_context")([decoded, context])))
    decoder = Model([token, memory_in, h, c], [probs, h1, c1], name="translator_decoder")
    return encoder, decoder


def greedy_decode(encoder, decoder, source, bos, eos, max_len):
    """Token ids (N, ≤ max_len) choosing the most likely token at each step, all sentences at once;
    a finished sentence gets padding (0) after its end token."""
    memory, h, c = encoder.predict_on_batch(source)
    n = len(source)
    token = np.full((n, 1), bos, np.int32)
    out, done = [], np.zeros(n, bool)
    for _ in range(max_len):
        p, h, c = decoder.predict_on_batch([token, memory, h, c])
        nxt = p[:, -1].argmax(-1)
        nxt[done] = 0
        out.append(nxt)
        done |= nxt == eos
        if done.all():
            break
        token = nxt[:, None].astype(np.int32)
    return np.stack(out, axis=1)


def beam_decode(encoder, decoder, source, bos, eos, max_len, beam, alpha=1.0):
    """Beam search over all sentences at once: `beam` hypotheses per sentence, extended by their
    `beam` best continuations in total at each step (scores: Σ log p); a hypothesis that ended
    keeps its score. The one returned maximises Σ log p / length^alpha (length-normalised:
    without it, shorter outputs win)."""
    n = len(source)
    memory, h, c = encoder.predict_on_batch(source)
    memory, h, c = (np.repeat(a, beam, axis=0) for a in (memory, h, c))
    rows = np.arange(n)[:, None]
    scores = np.full((n, beam), -np.inf)
    scores[:, 0] = 0.0  # one live hypothesis to start from
    tokens = np.zeros((n, beam, 0), np.int64)
    finished = np.zeros((n, beam), bool)
    lengths = np.zeros((n, beam))
    token = np.full((n * beam, 1), bos, np.int32)
    for _ in range(max_len):
        p, h, c = decoder.predict_on_batch([token, memory, h, c])
        vocab = p.shape[-1]
        logp = np.log(np.maximum(p[:, -1], 1e-30)).reshape(n, beam, vocab)
        logp[finished] = -np.inf
        logp[finished, 0] = 0.0  # an ended hypothesis goes on with padding, at no cost
        candidates = (scores[:, :, None] + logp).reshape(n, -1)
        top = np.argpartition(-candidates, beam - 1, axis=1)[:, :beam]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(candidates, top, 1), axis=1), 1)
        origin, chosen = top // vocab, top % vocab
        scores = np.take_along_axis(candidates, top, 1)
        was_finished = np.take_along_axis(finished, origin, 1)
        lengths = np.take_along_axis(lengths, origin, 1) + ~was_finished
        finished = was_finished | (chosen == eos)
        tokens = np.concatenate([tokens[rows, origin], chosen[..., None]], axis=2)
        keep = (rows * beam + origin).ravel()
        h, c = h[keep], c[keep]
        if finished.all():
            break
        token = chosen.reshape(-1, 1).astype(np.int32)
    best = np.argmax(scores / np.maximum(lengths, 1) ** alpha, axis=1)
    return tokens[np.arange(n), best]
