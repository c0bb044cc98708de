"""The translation pipeline's attention model written in PyTorch, trained for the same wall time
on the same split, subword units and batches, and scored the same way: the reference that
`lstmfast translate train` is compared with.

    lstmfast translate train --out fr-model            # lstmfast: the default run
    python bench/bench_translation.py --model-dir fr-model
    python bench/bench_translation.py --seconds 60 --max-pairs 8000    # a short check

The PyTorch model: nn.Embedding(6000, 128) -> nn.Dropout -> bidirectional nn.LSTM(128) over the
packed source (its final states, concatenated, start the decoder) -> nn.LSTM(256) over the shifted
reference (embedded, nn.Dropout) -> dot-product attention over the encoder outputs, padding masked
-> tanh(nn.Linear(512, 256)) -> nn.Dropout -> nn.Linear(256, 6000), the dropout rate that of
lstmfast's run (its pipeline.json; --dropout without one); cross-entropy over the real target
tokens; Adam(1e-3, eps 1e-7); batches of 64 pairs of similar length in a new random order every
epoch, as lstmfast's fit reads them; each epoch at the learning rate lstmfast's run trained that
epoch with (MODEL_DIR/history.json: the rate falls after an epoch without a better validation
BLEU), the last one beyond. It trains until the wall time of lstmfast's training run (read from
MODEL_DIR/pipeline.json, or --seconds) is spent, then decodes the held-out sentences greedily and
with a beam of 4 through lstmfast's own decoding loops (pipelines/seq2seq.py), and scores them with
the pipeline's BLEU and chrF against all references. Both use 2 threads (--threads).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from machine import cpu_model


def build(torch, vs, vt_in, vt, emb, units, dropout=0.0):
    nn = torch.nn

    class Translator(nn.Module):
        def __init__(self):
            super().__init__()
            self.src_emb = nn.Embedding(vs, emb, padding_idx=0)
            self.tgt_emb = nn.Embedding(vt_in, emb, padding_idx=0)
            self.encoder = nn.LSTM(emb, units // 2, batch_first=True, bidirectional=True)
            self.decoder = nn.LSTM(emb, units, batch_first=True)
            self.attentional = nn.Linear(2 * units, units)
            self.out = nn.Linear(units, vt)
            self.dropout = nn.Dropout(dropout)  # the identity in eval()

        def encode(self, src):
            lengths = (src != 0).sum(1).clamp(min=1)
            packed = nn.utils.rnn.pack_padded_sequence(self.dropout(self.src_emb(src)), lengths, batch_first=True,
                                                       enforce_sorted=False)
            memory, (h, c) = self.encoder(packed)
            memory, _ = nn.utils.rnn.pad_packed_sequence(memory, batch_first=True, total_length=src.shape[1])
            return memory, torch.cat([h[0], h[1]], -1)[None], torch.cat([c[0], c[1]], -1)[None]

        def step(self, tokens, memory, h, c):
            decoded, (h, c) = self.decoder(self.dropout(self.tgt_emb(tokens)), (h, c))
            scores = decoded @ memory.transpose(1, 2)  # d_t · e_s
            padding = memory.abs().sum(-1) == 0  # the packed encoder leaves zeros on padding
            scores = scores.masked_fill(padding[:, None, :], float("-inf"))
            context = torch.softmax(scores, -1) @ memory
            attentional = torch.tanh(self.attentional(torch.cat([decoded, context], -1)))
            return self.out(self.dropout(attentional)), h, c

        def forward(self, src, tgt_in):
            memory, h, c = self.encode(src)
            return self.step(tgt_in, memory, h, c)[0]

    return Translator()


class _Encoder:
    """lstmfast's decoding loops call predict_on_batch: the PyTorch model behind that interface."""

    def __init__(self, torch, model):
        self.torch, self.model = torch, model

    def predict_on_batch(self, src):
        with self.torch.no_grad():
            memory, h, c = self.model.encode(self.torch.from_numpy(np.asarray(src, np.int64)))
        return memory.numpy(), h[0].numpy(), c[0].numpy()


class _Decoder(_Encoder):
    def predict_on_batch(self, inputs):
        tokens, memory, h, c = inputs
        t = self.torch
        with t.no_grad():
            logits, h, c = self.model.step(t.from_numpy(np.asarray(tokens, np.int64)), t.from_numpy(memory),
                                           t.from_numpy(h)[None], t.from_numpy(c)[None])
        return t.softmax(logits, -1).numpy(), h[0].numpy(), c[0].numpy()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model-dir", help="an lstmfast translation model directory: its training time and scores")
    p.add_argument("--seconds", type=float, help="training wall time (default: the model directory's)")
    p.add_argument("--max-pairs", type=int, help="use at most this many Tatoeba pairs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dropout", type=float, help="dropout rate (default: the model directory's, else the "
                                                 "pipeline's default)")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    import torch

    from lstmfast.pipelines import translation as tr

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    marker = {}
    if args.model_dir:
        with open(os.path.join(args.model_dir, "pipeline.json"), encoding="utf-8") as f:
            marker = json.load(f)
    rates = []
    if args.model_dir and os.path.exists(os.path.join(args.model_dir, "history.json")):
        with open(os.path.join(args.model_dir, "history.json"), encoding="utf-8") as f:
            rates = json.load(f).get("learning_rate", [])
    seconds = args.seconds or marker.get("train_seconds")
    if not seconds:
        p.error("give --seconds or --model-dir")
    cfg = tr.TranslateConfig(max_pairs=args.max_pairs, seed=args.seed).resolved()
    train_pairs, _, test_pairs, desc = tr.load_pairs(cfg)
    if marker:  # the very subword models lstmfast trained with
        src, tgt = tr._vocab_from_config(marker["source_vocab"]), tr._vocab_from_config(marker["target_vocab"])
    else:
        src = tr._vocab(cfg.level, cfg.lower, cfg.max_vocab, [s for s, _ in train_pairs], cfg.seed)
        tgt = tr._vocab(cfg.level, cfg.lower, cfg.max_vocab, [t for _, t in train_pairs], cfg.seed)
    s_tr, t_tr = src.encode([s for s, _ in train_pairs]), tgt.encode([t for _, t in train_pairs])
    batches = tr._PairBatches(s_tr, t_tr, cfg.batch_size, tgt.bos_id, tgt.eos_id).dataset
    dropout = args.dropout if args.dropout is not None else marker.get("config", {}).get(
        "dropout", 0.0 if marker else cfg.dropout)  # a model directory from before dropout: none
    model = build(torch, src.input_size, tgt.input_size, tgt.size, cfg.embedding_dim, cfg.units, dropout)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, eps=1e-7)
    rng = np.random.default_rng(args.seed)
    start, steps, epoch, losses = time.monotonic(), 0, 0, []
    while time.monotonic() - start < seconds:
        if rates:  # lstmfast's rate for this epoch
            for group in opt.param_groups:
                group["lr"] = rates[min(epoch, len(rates) - 1)]
        total = count = 0
        for i in rng.permutation(len(batches)):
            (s, t_in), t_out = batches[int(i)]
            opt.zero_grad()
            logits = model(torch.from_numpy(s.astype(np.int64)), torch.from_numpy(t_in.astype(np.int64)))
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                     torch.from_numpy(t_out.astype(np.int64)).reshape(-1),
                                                     ignore_index=0)
            loss.backward()
            opt.step()
            total, count, steps = total + float(loss.detach()), count + 1, steps + 1
            if time.monotonic() - start >= seconds:
                break
        epoch += 1
        losses.append(total / max(count, 1))
        print(f"epoch {epoch}: {count} steps, loss {losses[-1]:.4f}, lr {opt.param_groups[0]['lr']:.3g}, "
              f"{time.monotonic() - start:.0f} s", flush=True)
    trained = time.monotonic() - start
    model.eval()
    references = {}
    for s, t in test_pairs:
        references.setdefault(s, []).append(t)
    sources = list(references)
    refs = [references[s] for s in sources]
    enc, dec = _Encoder(torch, model), _Decoder(torch, model)
    max_target = max(len(t) for t in t_tr)
    results = {}
    for name, beam in (("pytorch_greedy", 1), ("pytorch_beam4", 4)):
        outputs = tr.decode_texts(enc, dec, src, tgt, sources, max_target, beam)
        results[name] = {"bleu": tr.corpus_bleu(outputs, refs), "chrf": tr.corpus_chrf(outputs, refs),
                         "exact_match": tr.exact_match(outputs, refs)}
    print(f"\nTatoeba en->fr, {len(sources)} held-out sentences; {args.threads} threads; {cpu_model()}")
    print(f"PyTorch {torch.__version__}: {steps} steps in {trained:.0f} s ({epoch} epochs, the last maybe partial), "
          f"dropout {dropout}")
    lstmfast_scores = {}
    if args.model_dir and os.path.exists(os.path.join(args.model_dir, "metrics.json")):
        with open(os.path.join(args.model_dir, "metrics.json"), encoding="utf-8") as f:
            lstmfast_scores = {k: v for k, v in json.load(f)["models"].items() if k.startswith("attention")}
    print(f"{'model':18s} {'BLEU':>6s} {'chrF':>6s} {'exact':>6s}")
    for name, m in {**lstmfast_scores, **results}.items():
        print(f"{name:18s} {m['bleu']:6.1f} {m['chrf']:6.1f} {m['exact_match']:6.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"seconds": trained, "steps": steps, "epochs": epoch, "losses": losses, "pytorch": results,
                       "lstmfast": lstmfast_scores, "cpu": cpu_model()}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
