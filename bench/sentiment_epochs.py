"""The sentiment pipeline's model, scored on the held-out reviews after every epoch, beside the
TF-IDF baseline of the same split: how test accuracy moves from epoch to epoch, which the
pipeline's single end-of-training score does not show.

    python bench/sentiment_epochs.py --seed 0                   # the default bilstm_pool, 5 epochs
    python bench/sentiment_epochs.py --seed 2 --epochs 4 --schedule cosine
    python bench/sentiment_epochs.py --network lstm --epochs 6
    python bench/sentiment_epochs.py --seed 2 --average-from 2,3   # also averages of later epochs

With --average-from K, the epochs from K on are also scored together: their weights averaged
(stochastic weight averaging) and their predicted probabilities averaged (a snapshot ensemble).

Every setting of `SentimentConfig` that is not given keeps its default; the data, split,
tokenizer, word2vec start, batches and model are the pipeline's own (lstmfast.pipelines.sentiment).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from lstmfast import data as D
from lstmfast.pipelines import sentiment as S
from lstmfast.pipelines.common import seed_everything


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--network", default="bilstm_pool", choices=S.NETWORKS)
    p.add_argument("--schedule", choices=["constant", "cosine"])
    p.add_argument("--units", type=int)
    p.add_argument("--limit", type=int, help="a stratified subset of this many reviews (a quick look)")
    p.add_argument("--no-tfidf", action="store_true")
    p.add_argument("--average-from", metavar="K[,K2...]",
                   help="also score the average of the weights, and of the probabilities, of epochs K.. "
                        "(for each K given)")
    args = p.parse_args()
    config = S.SentimentConfig(network=args.network, seed=args.seed, epochs=args.epochs, units=args.units,
                               schedule=args.schedule, limit=args.limit, average_from=0)
    if args.limit:
        config = dataclasses.replace(config, test_size=args.limit // 5, val_size=args.limit // 10)
    config = config.resolved()
    seed_everything(config.seed)
    texts, labels, _, source = S.load_texts(config)
    tr, va, te = S.split(texts, labels, config)
    print(f"{source}: train {len(tr)}, validation {len(va)}, test {len(te)}; {dataclasses.asdict(config)}")
    test_texts = [texts[i] for i in te]
    if not args.no_tfidf:
        pred = S.tfidf_baseline([texts[i] for i in tr], labels[tr], test_texts)
        print(f"TF-IDF + logistic regression: {np.mean(pred == labels[te]):.4f}")
    tokenizer = D.Tokenizer(num_words=config.max_features, oov_token="<OOV>")
    tokenizer.fit_on_texts([texts[i] for i in tr])
    y = labels[tr].astype(np.float32)
    model = S.build_model(config, tokenizer.vocabulary_size, -(-len(tr) // config.batch_size))
    seqs = S._token_ids(tokenizer, [texts[i] for i in tr], config.maxlen)
    if config.network == "bilstm_pool":
        S.start_embedding(model.get_layer("embedding"), config, seqs, verbose=1)
        train = dict(x=S.LengthBatches(seqs, y, config.batch_size, seed=config.seed))
    else:
        train = dict(x=S._sequences(tokenizer, [texts[i] for i in tr], config.maxlen), y=y,
                     batch_size=config.batch_size)
    starts = [int(v) for v in args.average_from.split(",")] if args.average_from else []
    swa = {k: None for k in starts}
    probs = []
    for epoch in range(config.epochs):
        start = time.perf_counter()
        h = model.fit(epochs=epoch + 1, initial_epoch=epoch, verbose=0, **train)
        prob = S.predict_probabilities(model, config, tokenizer, test_texts)
        print(f"epoch {epoch + 1}: {time.perf_counter() - start:.0f} s, loss {h.history['loss'][-1]:.4f}, "
              f"test accuracy {np.mean((prob >= 0.5) == labels[te]):.4f}", flush=True)
        probs.append(prob)
        weights = model.get_weights()
        for k in starts:
            if epoch + 1 < k:
                continue
            count = epoch + 2 - k  # epochs averaged, this one included
            swa[k] = [w.copy() for w in weights] if swa[k] is None else \
                [a + (w - a) / count for a, w in zip(swa[k], weights)]
            model.set_weights(swa[k])
            p_swa = S.predict_probabilities(model, config, tokenizer, test_texts)
            model.set_weights(weights)
            p_mean = np.mean(probs[k - 1:], axis=0)
            print(f"  epochs {k}-{epoch + 1}: averaged weights {np.mean((p_swa >= 0.5) == labels[te]):.4f}, "
                  f"averaged probabilities {np.mean((p_mean >= 0.5) == labels[te]):.4f}", flush=True)

if __name__ == "__main__":
    main()
