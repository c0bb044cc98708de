"""Forecasting the weekly CO2 concentration at Mauna Loa with an LSTM.

Introduction
------------
The series: 2,284 weekly measurements of atmospheric CO2 (ppmv), 1958-2001,
shipped with lstmfast. It rises year after year and swings with the seasons.
We train the classic small model, LSTM(50, activation='relu') -> Dense(1), to
predict next week's value from the last N_STEPS weeks, then forecast a year
ahead by feeding its own predictions back (recursive forecasting). The last
104 weeks are held out and the model is compared with two baselines that need
no training: "same as last week" (naive) and "same as a year ago" (seasonal
naive).

The same steps, with a direct multi-step model, Holt-Winters, plots and a
saved model directory, are one command: ``lstmfast forecast train``.

Run: ``python examples/forecast_co2.py`` (about a minute on two cores).
"""

# -- Set-up --------------------------------------------------------------------
import numpy as np

import lstmfast
from lstmfast.data import StandardScaler, chronological_split, load_co2, sliding_windows
from lstmfast.layers import LSTM, Dense, Input

# -- Configuration: every setting in one place -------------------------------------
N_STEPS = 60          # weeks the model sees
HORIZON = 52          # weeks of the recursive forecast
TEST_WEEKS = 104      # held out at the end of the series
VAL_WEEKS = 104       # before the test part, for early stopping
UNITS = 50            # LSTM units
EPOCHS = 100          # upper bound; early stopping usually ends sooner
BATCH_SIZE = 32
SEED = 0

lstmfast.utils.set_random_seed(SEED)

# -- Data ----------------------------------------------------------------------------
series = load_co2()                       # 59 missing weeks filled by linear interpolation
y = series.values[:, 0]
train, val, test = chronological_split(len(y), test_size=TEST_WEEKS, val_size=VAL_WEEKS)

# Standardise with statistics of the training part only, then express each
# window relative to its last value, so the model learns changes, not levels,
# and can follow the trend above anything it saw in training.
scaler = StandardScaler().fit(y[train])
z = scaler.transform(y)


def windows(part, horizon=1):
    X, t = sliding_windows(part, N_STEPS, horizon, dtype=np.float64)
    last = X[:, -1, :]
    return (X - last[:, None, :]).astype(np.float32), (t - last).astype(np.float32)


X_train, y_train = windows(z[train])
X_val, y_val = windows(z[val.start - N_STEPS:val.stop])   # inputs may look back into training
gain = 1.0 / y_train.std()                                 # unit-spread targets
X_train, y_train, X_val, y_val = X_train * gain, y_train * gain, X_val * gain, y_val * gain
print(f"{len(X_train)} training windows, {len(X_val)} validation windows")

# -- Build ---------------------------------------------------------------------------
model = lstmfast.Sequential([
    Input(shape=(N_STEPS, 1)),
    LSTM(UNITS, activation="relu"),
    Dense(1),
])
# Gradients clipped to norm 1: a relu LSTM's training can otherwise blow up in one step.
model.compile(optimizer=lstmfast.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0), loss="mse")
model.summary()

# -- Train ---------------------------------------------------------------------------
model.fit(X_train, y_train, epochs=EPOCHS, batch_size=BATCH_SIZE, validation_data=(X_val, y_val),
          callbacks=[lstmfast.callbacks.EarlyStopping(patience=15, restore_best_weights=True)], verbose=2)

# -- Inference -------------------------------------------------------------------------


def predict_next(history_z):
    """history_z: (W, N_STEPS) standardised windows -> next standardised value."""
    last = history_z[:, -1:]
    out = model.predict(((history_z - last) * gain)[..., None].astype(np.float32), verbose=0)
    return out[:, 0] / gain + last[:, 0]


def rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


# One step ahead: each test week from the actual weeks before it.
t = np.arange(test.start, test.stop)
one_step = scaler.inverse_transform(predict_next(z[t[:, None] - N_STEPS + np.arange(N_STEPS)]))
print(f"one-step RMSE: LSTM {rmse(one_step, y[t]):.3f}  naive {rmse(y[t - 1], y[t]):.3f}  "
      f"seasonal naive {rmse(y[t - 52], y[t]):.3f}")

# A year ahead from the start of the test part, feeding predictions back in.
window = z[test.start - N_STEPS:test.start][None, :].copy()
path = []
for _ in range(HORIZON):
    nxt = predict_next(window)
    path.append(nxt[0])
    window = np.concatenate([window[:, 1:], nxt[:, None]], axis=1)
path = scaler.inverse_transform(np.array(path))
truth = y[test.start:test.start + HORIZON]
print(f"{HORIZON}-week forecast RMSE: LSTM {rmse(path, truth):.3f}  "
      f"naive {rmse(np.full(HORIZON, y[test.start - 1]), truth):.3f}  "
      f"seasonal naive {rmse(y[test.start - 52:test.start - 52 + HORIZON], truth):.3f}")
for week in (0, 12, 25, 51):
    print(f"  {series.dates[test.start + week]}: forecast {path[week]:.2f}, measured {truth[week]:.2f}")
