"""Writes the v0.1 model files and what they predict: python tests/data/make_v0_1_files.py OUT_DIR"""
import sys, numpy as np
import lstmfast as lf
from lstmfast import layers as L
out = sys.argv[1]
lf.utils.set_random_seed(0)
rng = np.random.default_rng(0)
# the seed's three models, small, trained a little so the optimizer has state
x1 = rng.integers(0, 20, (16, 6)); x1[:4, :2] = 0
y1 = lf.utils.to_categorical(rng.integers(0, 3, (16, 2)), 3)
m1 = lf.Sequential([L.Input((6,)), L.Embedding(20, 4, mask_zero=True),
                    L.Bidirectional(L.LSTM(3, return_sequences=True)), L.LSTM(5, dropout=0.1),
                    L.Dropout(0.2), L.RepeatVector(2), L.TimeDistributed(L.Dense(3, activation="softmax"))])
m1.compile(lf.optimizers.Adam(0.01), "categorical_crossentropy", metrics=["accuracy"])
m1.fit(x1, y1, epochs=2, batch_size=8, verbose=0)
m1.save(f"{out}/v0.1-seq2seq.lstmfast")
x2 = rng.standard_normal((16, 7, 1)).astype(np.float32)
y2 = rng.standard_normal((16, 1)).astype(np.float32)
m2 = lf.Sequential([L.Input((7, 1)), L.LSTM(6, activation="relu"), L.Dense(1)])
m2.compile("adam", "mse")
m2.fit(x2, y2, epochs=2, batch_size=8, verbose=0)
m2.save(f"{out}/v0.1-timeseries.lstmfast")
x3 = lf.utils.to_categorical(rng.integers(0, 8, (16, 5)), 8)
y3 = lf.utils.to_categorical(rng.integers(0, 8, (16, 4)), 8)
m3 = lf.Sequential([L.Input((5, 8)), L.LSTM(6), L.RepeatVector(4), L.LSTM(6, return_sequences=True),
                    L.TimeDistributed(L.Dense(8, activation="softmax"))])
m3.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
m3.fit(x3, y3, epochs=2, batch_size=8, verbose=0)
m3.save(f"{out}/v0.1-translation.lstmfast")
np.savez(f"{out}/v0.1-expected.npz", x3=x3, y3=y3, p3=m3.predict(x3, verbose=0),
         after3=np.concatenate([w.ravel() for w in (m3.train_on_batch(x3, y3) and m3.get_weights())]), x1=x1, y1=y1, p1=m1.predict(x1, verbose=0), x2=x2, y2=y2,
         p2=m2.predict(x2, verbose=0),
         after1=np.concatenate([w.ravel() for w in (m1.train_on_batch(x1, y1) and m1.get_weights())]),
         after2=np.concatenate([w.ravel() for w in (m2.train_on_batch(x2, y2) and m2.get_weights())]))
