"""Time-series forecasting: the weekly Mauna Loa CO2 series, US daily births, or your CSV, with an LSTM.

The model is the classic one: ``LSTM(50, activation='relu') -> Dense(1)`` on
windows of ``n_steps`` past values. Two forecasts of a horizon ``h``:

* recursive: the one-step model is applied ``h`` times, each prediction
  appended to the window (univariate series only);
* direct: a second model of the same shape ends in ``Dense(h)`` and predicts
  the ``h`` following values at once.

Preprocessing (all fitted on the training part only): the series is
standardised with the training mean and deviation; each window is then taken
relative to its last value (``x - x_last``; the target is ``y - x_last``)
and multiplied by a gain that gives the training targets unit spread. Working
relative to the last value lets the network follow the rising trend beyond
the range it saw in training.

The dates set the defaults (``lstmfast.data.calendar``): their frequency gives the seasons
(daily: 7, 364 and 365 days; weekly: 52; monthly: 12; hourly: 24 and 168), the horizon, the
window and the held-out part, and calendar features (day of week, day of year, month, as sine
and cosine pairs) join the inputs; a categorical column (a weekday name) arrives one-hot
encoded. Only the value columns are taken relative to their last value; calendar and one-hot
columns stay as they are.

Evaluation on the held-out last ``test_size`` steps (104 weeks, or a year of days):

* one-step: each test step predicted from the actual steps before it;
* ``h``-step: from every origin in the test period with ``h`` steps left, a
  path of ``h`` forecasts; the RMSE pools all of them (rolling origin).

Baselines in the same run: naive (the last value), seasonal naive for each
season of the frequency (the value one season earlier) and, when
statsmodels is installed, Holt-Winters (additive trend and season, the main
season) with parameters fitted on the training part.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass

import numpy as np

from .. import data as D
from .common import (
    PipelineError, Stopwatch, at_least, fit_or_stop, format_table, history_dict, load_pipeline_model, log, option,
    plot_saved_history, read_marker, resolve_out, save_pipeline, seed_everything, set_threads, setting,
    write_json, _pyplot,
)

PIPELINE = "forecast"
SUMMARY = "weekly Mauna Loa CO2 (built in) or your CSV with a date column and value columns"
DIRECT_FILE = "direct.lstmfast"

__all__ = ["ForecastConfig", "train", "evaluate", "predict", "load_series", "baselines", "rmse"]


@dataclass
class ForecastConfig:
    """Every setting of a forecasting run (defaults: the run reported in the docs). The settings
    left at None are chosen from the frequency of the dates (:meth:`resolved`)."""

    n_steps: int | None = option(None, "window length (default: 60 steps for weekly data, 28 for daily, "
                                       "168 for hourly, 36 for monthly)")
    horizon: int | None = option(None, "multi-step horizon (default: weekly 52, daily 56, hourly 48, monthly 24)")
    season: int | None = option(None, "season length in steps (default: from the dates: daily 7 (also 364 and 365 "
                                      "for the baselines), weekly 52, monthly 12, hourly 24 (and 168))")
    units: int = setting(50, "LSTM units (the seed model)")
    activation: str = setting("relu", "LSTM activation (the seed model)")
    epochs: int = option(100, "maximum epochs; early stopping on validation loss may end sooner")
    patience: int = setting(15, "epochs without improvement before stopping")
    batch_size: int = option(32, "windows per gradient step")
    learning_rate: float = setting(1e-3, "Adam's learning rate")
    clipnorm: float | None = setting(1.0, "clip each gradient to this L2 norm (a relu LSTM can blow up)")
    test_size: int | None = option(None, "held-out last steps (default: 104 weekly, 365 daily, 336 hourly, "
                                         "36 monthly)", type=at_least(2))
    val_size: int | None = setting(None, "validation steps before the test part (default: as test_size)")
    relative: bool = setting(True, "value windows relative to their last value (see the module's doc)")
    calendar: bool | None = setting(None, "calendar features from the dates (default: for daily, hourly and "
                                          "monthly data)")
    direct: bool = setting(True, "also train the direct multi-step model")
    holt_winters: bool = setting(True, "Holt-Winters baseline (needs statsmodels; about 10 s)")
    seed: int = option(0, "seed of the initial weights and the shuffling", type=at_least(0))
    threads: int | None = option(None, "kernel threads (default: all cores)", every_command=True)
    data: str | None = option(None, "CSV with a header: a date column (the first, or --date-column) and value "
                                    "columns, or 'births' for the built-in US daily births 1969-1988 "
                                    "(default: the built-in weekly CO2 series)",
                              every_command=True, metavar="PATH")
    date_column: str | None = option(None, "name of the date column (default: the first)")
    columns: str | None = option(None, "value columns to use, comma-separated (default: all but the date)")
    target: str | None = option(None, "column to forecast (default: the first numeric value column)")

    def quick(self):
        """A run of well under a minute."""
        return dataclasses.replace(self, epochs=min(self.epochs, 15), patience=5)

    def resolved(self, frequency):
        """The settings with their None defaults chosen for a series of `frequency`."""
        name = frequency.name
        season = self.season or frequency.season or 52
        horizon = self.horizon or (frequency.horizon if name != "unknown" else 52)
        test = self.test_size or {"daily": 365, "hourly": 336, "monthly": 36, "quarterly": 12}.get(name, 104)
        calendar = self.calendar if self.calendar is not None else name in ("daily", "hourly", "monthly", "quarterly")
        return dataclasses.replace(
            self, season=season, horizon=horizon, test_size=test, val_size=self.val_size or test, calendar=calendar,
            n_steps=self.n_steps or {"daily": 28, "hourly": 168, "monthly": 36, "quarterly": 12}.get(name, 60))


CONFIG = ForecastConfig


def rmse(pred, truth):
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    return float(np.sqrt(np.mean((pred - truth) ** 2)))


def load_series(config, categories=None):
    """The configured series, categorical columns one-hot encoded (as `categories` says, when
    given: a trained model's layout)."""
    if config.data == "births":
        return D.load_us_births()
    if config.data:
        columns = [c.strip() for c in config.columns.split(",") if c.strip()] if config.columns else None
        return D.load_series_csv(config.data, date_column=config.date_column, columns=columns, target=config.target,
                                 categories=categories)
    return D.load_co2()


def _features(series, config):
    """(values (N, F), column names, F booleans: taken relative to the window's last value):
    the series' columns, then its calendar features when `config.calendar`."""
    values, names = series.values, list(series.columns)
    relative = [config.relative and "=" not in c for c in names]  # one-hot columns stay absolute
    if config.calendar:
        cal_names, cal = D.calendar_features(series.dates, D.infer_frequency(series.dates))
        values, names, relative = np.concatenate([values, cal], axis=1), names + cal_names, relative + [False] * len(cal_names)
    return values, names, relative


# ---------------------------------------------------------------------------
# Preprocessing: standardise, then windows relative to their last value.

class _Prep:
    """Maps the raw series to model inputs and model outputs back to values. `relative`: one
    boolean per feature (True: taken relative to the window's last value), or one for all."""

    def __init__(self, scaler, target_index, n_steps, relative, gain=1.0):
        self.scaler, self.t, self.n_steps, self.relative, self.gain = scaler, target_index, n_steps, relative, gain
        mask = np.asarray(relative, bool)
        self._mask = mask if mask.ndim else None  # None: one flag for every feature

    def _relative(self, j=None):
        if self._mask is None:
            return bool(self.relative)
        return self._mask if j is None else bool(self._mask[j])

    @classmethod
    def fit(cls, values_train, target_index, n_steps, relative, horizon):
        scaler = D.StandardScaler().fit(values_train)
        prep = cls(scaler, target_index, n_steps, relative)
        _, y = prep.windows(values_train, horizon)
        prep.gain = float(1.0 / max(np.std(y), 1e-8))
        return prep

    def inputs(self, windows):
        """(W, n_steps, F) raw windows -> model inputs."""
        z = self.scaler.transform(windows)
        rel = self._relative()
        if rel is True:
            z = z - z[:, -1:, :]
        elif rel is not False:
            z = z - z[:, -1:, :] * rel  # x − x_last for the value columns only
        return (z * self.gain).astype(np.float32)

    def windows(self, values, horizon):
        """Training pairs (X, y) of all windows in ``values`` (raw (N, F))."""
        X, y = D.sliding_windows(values, self.n_steps, horizon, target_column=self.t, dtype=np.float64)
        return self.inputs(X), self.targets(X, y)

    def _anchor(self, X):
        # z-value of the target at the window's last step (0 when not relative)
        if not self._relative(self.t):
            return np.zeros((len(X), 1))
        return self.scaler.transform(X[:, -1, :])[:, self.t:self.t + 1]

    def targets(self, X, y):
        zy = (y - self.scaler.a_[self.t]) / self.scaler.b_[self.t]
        return ((zy - self._anchor(X)) * self.gain).astype(np.float32)

    def outputs(self, X, out):
        """Model outputs (W, h) for raw windows X -> values of the target."""
        z = np.asarray(out, dtype=np.float64) / self.gain + self._anchor(X)
        return self.scaler.inverse_transform(z, column=self.t)

    def get_config(self):
        relative = self.relative if self._mask is None else [bool(r) for r in self._mask]
        return {"scaler": self.scaler.get_config(), "target_index": self.t, "n_steps": self.n_steps,
                "relative": relative, "gain": self.gain}

    @classmethod
    def from_config(cls, c):
        return cls(D.scaler_from_config(c["scaler"]), c["target_index"], c["n_steps"], c["relative"], c["gain"])


# ---------------------------------------------------------------------------
# Model

def build_model(config, n_features, outputs=1):
    """The seed model: LSTM(units, activation) on (n_steps, n_features) -> Dense(outputs)."""
    from ..layers import LSTM, Dense, Input
    from ..models import Sequential
    from ..optimizers import Adam

    model = Sequential([
        Input(shape=(config.n_steps, n_features)),
        LSTM(config.units, activation=config.activation),
        Dense(outputs),
    ])
    model.compile(optimizer=Adam(learning_rate=config.learning_rate, clipnorm=config.clipnorm), loss="mse")
    return model


def _fit(model, X, y, Xv, yv, config, verbose):
    from ..callbacks import EarlyStopping

    cb = [EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)]
    h = fit_or_stop(model, "nothing was saved; the model directory is as it was", x=X, y=y,
                    batch_size=config.batch_size, epochs=config.epochs, validation_data=(Xv, yv), callbacks=cb,
                    verbose=verbose, shuffle=True)
    return history_dict(h)


def train(config=None, out=None, verbose=1, evaluate_after=True, **overrides):
    """Train the one-step (and direct) model, save the model directory, and evaluate it.

    Returns a dict with ``model_dir``, ``history``, ``train_seconds`` and, when
    ``evaluate_after``, the ``metrics`` of :func:`evaluate`.
    """
    config = dataclasses.replace(config or ForecastConfig(), **overrides)
    seed_everything(config.seed)
    set_threads(config.threads)
    series = load_series(config)
    source = series.source or config.data or "the data"
    if len(series.dates) < 3:
        raise PipelineError(f"{source}: {len(series.dates)} row(s) of data; a forecast needs at least a "
                            "training, a validation and a held-out part")
    frequency = D.infer_frequency(series.dates)
    seasons = list(frequency.seasons) if config.season is None and frequency.seasons else None
    config = config.resolved(frequency)
    seasons = seasons or [config.season]
    values, features, relative = _features(series, config)
    n = len(values)
    if config.test_size < config.horizon:
        raise PipelineError(f"--test-size {config.test_size}: the held-out part must hold at least one horizon "
                            f"({config.horizon} steps) to be scored")
    need = config.n_steps + config.horizon + 1 + config.val_size + config.test_size
    if n < need:
        raise PipelineError(
            f"{source}: {n} rows of data; this run needs at least {need}: {config.n_steps + config.horizon + 1} "
            f"to train on (a window of {config.n_steps} steps, a horizon of {config.horizon}), {config.val_size} "
            f"for validation and {config.test_size} held out (--n-steps, --horizon and --test-size set these)")
    tr, va, te = D.chronological_split(n, config.test_size, config.val_size)
    if tr.stop < config.n_steps + config.horizon + 1:
        raise PipelineError(f"the training part ({tr.stop} steps) is too short for windows of "
                            f"{config.n_steps} steps and a horizon of {config.horizon}")
    for note in series.notes:
        log(verbose, f"data: {note}")
    log(verbose, f"data: {series.source or config.data}: {n} steps ({frequency.name}), {len(features)} feature(s) "
                 f"({', '.join(features)}); train {tr.stop}, validation {va.stop - va.start}, test {te.stop - te.start} "
                 f"(held out); seasons {', '.join(map(str, seasons))}; window {config.n_steps}, horizon {config.horizon}")

    prep = _Prep.fit(values[tr], series.target_index, config.n_steps, relative, 1)
    # Validation windows end inside the validation part; their inputs may reach back into training.
    X, y = prep.windows(values[tr], 1)
    val_from = max(va.start - config.n_steps, 0)
    Xv, yv = prep.windows(values[val_from:va.stop], 1)

    out = resolve_out(out, PIPELINE)
    with Stopwatch() as clock:
        model = build_model(config, values.shape[1], 1)
        log(verbose, f"training the one-step model on {len(X)} windows of {config.n_steps} steps")
        history = _fit(model, X, y, Xv, yv, config, verbose)
        models = {"model": model}
        if config.direct:
            Xd, yd = prep.windows(values[tr], config.horizon)
            Xdv, ydv = prep.windows(values[val_from:va.stop], config.horizon) \
                if va.stop - val_from >= config.n_steps + config.horizon else (Xd[-8:], yd[-8:])
            log(verbose, f"training the direct {config.horizon}-step model")
            direct = build_model(config, values.shape[1], config.horizon)
            hd = _fit(direct, Xd, yd, Xdv, ydv, config, verbose)
            history.update({"direct_" + k: v for k, v in hd.items()})
            models["direct"] = direct
    log(verbose, f"trained in {clock.seconds:.1f} s")

    marker = {
        "config": dataclasses.asdict(config),
        "preprocessing": prep.get_config(),
        "columns": series.columns, "target": series.target, "features": features,
        "categories": series.categories, "frequency": frequency.name, "seasons": seasons,
        "data": {"source": series.source or os.path.abspath(config.data), "n": n,
                 "last_date": series.dates[-1], "n_filled": series.n_filled},
        "split": {"train": [tr.start, tr.stop], "val": [va.start, va.stop], "test": [te.start, te.stop]},
        "train_seconds": clock.seconds,
    }
    save_pipeline(out, PIPELINE, model, marker, history,
                  extra=(lambda d: direct.save(os.path.join(d, DIRECT_FILE))) if config.direct else None)
    result = {"model_dir": out, "history": history, "train_seconds": clock.seconds}
    if evaluate_after:
        result["metrics"] = _evaluate(out, models, series=series, verbose=verbose)
    return result


# ---------------------------------------------------------------------------
# Forecasts

def _one_step(model, prep, values, targets_at):
    """Predict values[t, target] for each t in ``targets_at`` from the n_steps actual steps before."""
    idx = np.asarray(targets_at)[:, None] - prep.n_steps + np.arange(prep.n_steps)[None, :]
    X = values[idx]
    return prep.outputs(X, model.predict(prep.inputs(X), verbose=0))[:, 0]


def _recursive(model, prep, values, origins, horizon, known=None):
    """Paths of ``horizon`` forecasts from each origin (forecast starts at values[origin]). Each
    forecast is appended to the window as the next step's target; the next step's other
    features come from `known` (rows indexed as `values`, reaching at least horizon steps past
    the last origin: the calendar, known in advance), needed when there are any."""
    origins = np.asarray(origins)
    X = values[origins[:, None] - prep.n_steps + np.arange(prep.n_steps)[None, :]].copy()
    paths = np.empty((len(origins), horizon))
    for k in range(horizon):
        nxt = prep.outputs(X, model.predict(prep.inputs(X), verbose=0))[:, 0]
        paths[:, k] = nxt
        row = known[origins + k].copy() if known is not None else np.empty((len(origins), 1))
        row[:, prep.t] = nxt
        X = np.concatenate([X[:, 1:], row[:, None, :]], axis=1)
    return paths


def _recursive_ok(marker_or_series_columns):
    """Whether the recursive forecast can run: one value column (beside calendar features)."""
    return len(marker_or_series_columns) == 1


def _direct(model, prep, values, origins):
    X = values[np.asarray(origins)[:, None] - prep.n_steps + np.arange(prep.n_steps)[None, :]]
    return prep.outputs(X, model.predict(prep.inputs(X), verbose=0))


def baselines(y, test_start, horizon, season=52, holt_winters=True):
    """Naive, seasonal-naive and Holt-Winters forecasts on the test part of ``y`` (1-D).

    ``season``: one season length or a list (a seasonal naive for each; Holt-Winters takes the
    first). Returns ``{name: (one_step, paths)}``: ``one_step`` predicts each test
    step from the steps before it; ``paths`` has one row of ``horizon``
    forecasts per origin ``test_start .. len(y) - horizon``.
    """
    seasons = [int(s) for s in (season if isinstance(season, (list, tuple)) else [season])]
    seasons = [s for s in seasons if 1 < s < test_start] or [min(seasons[0], test_start - 1)]
    n = len(y)
    origins = np.arange(test_start, n - horizon + 1)
    steps = np.arange(horizon)
    out = {
        "naive": (y[test_start - 1:n - 1], np.repeat(y[origins - 1][:, None], horizon, axis=1)),
    }
    for season in seasons:
        # seasonal naive: the value one season earlier, repeating the last observed season
        sn_idx = origins[:, None] + steps[None, :] - season * (1 + steps[None, :] // season)
        out[f"seasonal_naive_{season}"] = (y[test_start - season:n - season], y[sn_idx])
    if holt_winters:
        hw = _holt_winters(y, test_start, origins, horizon, seasons[0])
        if hw is not None:
            out["holt_winters"] = hw
    return out


def _holt_winters(y, test_start, origins, horizon, season):
    try:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
    except ImportError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = ExponentialSmoothing(y[:test_start], trend="add", seasonal="add", seasonal_periods=season,
                                      initialization_method="estimated").fit()
        p = fitted.params

        def with_fitted_params(part):
            # the same parameters and initial states, run over a longer stretch of the series
            return ExponentialSmoothing(
                part, trend="add", seasonal="add", seasonal_periods=season, initialization_method="known",
                initial_level=p["initial_level"], initial_trend=p["initial_trend"],
                initial_seasonal=p["initial_seasons"],
            ).fit(smoothing_level=p["smoothing_level"], smoothing_trend=p["smoothing_trend"],
                  smoothing_seasonal=p["smoothing_seasonal"], optimized=False)

        one = with_fitted_params(y).fittedvalues[test_start:]
        paths = np.stack([with_fitted_params(y[:o]).forecast(horizon) for o in origins])
    return np.asarray(one), paths


def _config_of(marker, data=None):
    """The (resolved) configuration a model directory was trained with; `data` in place of its data."""
    known = {f.name for f in dataclasses.fields(ForecastConfig)}
    cfg = ForecastConfig(**{k: v for k, v in marker["config"].items() if k in known})
    if cfg.calendar is None:
        cfg = dataclasses.replace(cfg, calendar=False)  # trained before calendar features existed
    return dataclasses.replace(cfg, data=data) if data else cfg


def _model_features(series, cfg, marker):
    """The model's input features of `series`, checked against those it was trained on."""
    values, features, _ = _features(series, cfg)
    trained = marker.get("features", marker["columns"])
    if features != trained:
        raise PipelineError(f"the data gives the features {', '.join(features)} but the model was trained "
                            f"on {', '.join(trained)}")
    return values


def evaluate(model_dir, data=None, plot=False, verbose=1):
    """Score the saved model on the held-out test part beside the baselines.

    ``data``: a CSV in the training format (default: the series the model was
    trained on). Writes ``metrics.json`` (and with ``plot`` the PNGs) into
    ``model_dir``, prints a table, returns the metrics dict.
    """
    model, _ = load_pipeline_model(model_dir, PIPELINE)
    models = {"model": model}
    if os.path.exists(os.path.join(model_dir, DIRECT_FILE)):
        from ..models import load_model
        models["direct"] = load_model(os.path.join(model_dir, DIRECT_FILE), compile=False)
    return _evaluate(model_dir, models, data=data, plot=plot, verbose=verbose)


def _evaluate(model_dir, models, series=None, data=None, plot=False, verbose=1):
    """:func:`evaluate` with the models at hand (``{"model": ..., "direct": ...}``) and,
    after training, the series already loaded."""
    marker = read_marker(model_dir, PIPELINE)
    cfg = _config_of(marker, data)
    series = series or load_series(cfg, categories=marker.get("categories"))
    prep = _Prep.from_config(marker["preprocessing"])
    values = _model_features(series, cfg, marker)
    y = values[:, prep.t]
    n = len(values)
    test_start = n - cfg.test_size
    h = cfg.horizon
    origins = np.arange(test_start, n - h + 1)
    truth_one, truth_paths = y[test_start:], y[origins[:, None] + np.arange(h)[None, :]]

    with Stopwatch() as clock:
        rows = {}
        one = _one_step(models["model"], prep, values, np.arange(test_start, n))
        rec = _recursive(models["model"], prep, values, origins, h, known=values if values.shape[1] > 1 else None) \
            if _recursive_ok(marker["columns"]) else None
        rows["lstm"] = (one, rec)
        if "direct" in models:
            rows["lstm_direct"] = (None, _direct(models["direct"], prep, values, origins))
        base = baselines(y, test_start, h, marker.get("seasons") or cfg.season, holt_winters=cfg.holt_winters)
        rows.update(base)

    metrics = {"pipeline": PIPELINE, "test_steps": int(cfg.test_size), "horizon": int(h),
               "frequency": marker.get("frequency"), "seasons": marker.get("seasons") or [cfg.season],
               "origins": int(len(origins)), "target": marker["target"], "models": {}}
    for name, (o, p) in rows.items():
        metrics["models"][name] = {
            "rmse_one_step": None if o is None else rmse(o, truth_one),
            f"rmse_{h}_step": None if p is None else rmse(p, truth_paths),
        }
    lstm = metrics["models"]["lstm"]
    lstm_h = [v[f"rmse_{h}_step"] for k, v in metrics["models"].items() if k.startswith("lstm") and v[f"rmse_{h}_step"] is not None]
    for key, names in (("beats_naive_baselines", [k for k in base if k != "holt_winters"]),
                       ("beats_baselines", list(base))):  # every baseline that fits the data's seasons
        best_one = min(metrics["models"][k]["rmse_one_step"] for k in names)
        best_h = min(metrics["models"][k][f"rmse_{h}_step"] for k in names)
        metrics[key] = {"one_step": lstm["rmse_one_step"] < best_one, f"{h}_step": bool(lstm_h) and min(lstm_h) < best_h,
                        "against": names}
    metrics["evaluate_seconds"] = clock.seconds
    metrics["train_seconds"] = marker.get("train_seconds")
    write_json(os.path.join(model_dir, "metrics.json"), metrics)

    table = [(name, m["rmse_one_step"], m[f"rmse_{h}_step"]) for name, m in metrics["models"].items()]
    log(verbose, f"\nRMSE on the held-out last {cfg.test_size} steps ({marker['target']}); "
                 f"{h}-step: {len(origins)} rolling origins")
    log(verbose, format_table(table, ["model", "one-step", f"{h}-step"]))

    if plot:
        metrics["plots"] = _plots(model_dir, series, y, test_start, one, rows, origins, h)
        for p in metrics["plots"]:
            log(verbose, f"wrote {p}")
    return metrics


def _plots(model_dir, series, y, test_start, one, rows, origins, h):
    from .. import distribute

    if not distribute.is_chief():  # rank 0 draws them (lstmfast.distribute)
        return []
    plt = _pyplot()
    n = len(y)
    t = np.arange(n)
    start = max(test_start - 3 * 52, 0)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(t[start:], y[start:], color="black", lw=1, label="truth")
    ax.plot(t[test_start:], one, color="tab:blue", lw=1, label="LSTM one-step")
    for i, o in enumerate([origins[0], origins[-1]]):
        k = o - origins[0]
        if rows["lstm"][1] is not None:
            ax.plot(t[o:o + h], rows["lstm"][1][k], color="tab:red", lw=1.5,
                    label=f"LSTM recursive {h}-step" if i == 0 else None)
        if "lstm_direct" in rows:
            ax.plot(t[o:o + h], rows["lstm_direct"][1][k], color="tab:green", lw=1.5, ls="--",
                    label=f"LSTM direct {h}-step" if i == 0 else None)
        sn = [k2 for k2 in rows if k2.startswith("seasonal_naive")][0]
        ax.plot(t[o:o + h], rows[sn][1][k], color="tab:gray", lw=1, ls=":",
                label="seasonal naive" if i == 0 else None)
    ax.axvline(test_start, color="gray", lw=0.8)
    ticks = np.linspace(start, n - 1, 6).astype(int)
    ax.set_xticks(ticks, [series.dates[i] for i in ticks])
    ax.set_ylabel(series.target)
    ax.set_title("Forecasts on the held-out test part (right of the line)")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p1 = os.path.join(model_dir, "forecast.png")
    fig.savefig(p1, dpi=110)
    plt.close(fig)
    out = [p1]
    p2 = plot_saved_history(model_dir, "one-step model training", drop_prefix="direct_")
    return out + ([p2] if p2 else [])


def predict(model_dir, data=None, horizon=None, method=None, verbose=0):
    """Forecast the ``horizon`` steps after the end of the series.

    ``data``: a CSV in the training format (default: the series the model was
    trained on). ``method``: ``'recursive'`` (default for one feature) or
    ``'direct'`` (default, and the only choice, for several features; at most
    the trained horizon). Returns a list of ``(step_label, value)``: dates when
    the series has evenly spaced ISO dates, else ``+1, +2, ...``.
    """
    model, marker = load_pipeline_model(model_dir, PIPELINE)
    cfg = _config_of(marker, data)
    series = load_series(cfg, categories=marker.get("categories"))
    prep = _Prep.from_config(marker["preprocessing"])
    values = _model_features(series, cfg, marker)
    if len(values) < prep.n_steps:
        raise PipelineError(f"the series has {len(values)} steps; the model needs the last {prep.n_steps}")
    h = int(horizon or cfg.horizon)
    can_recurse = _recursive_ok(marker["columns"])
    method = method or ("recursive" if can_recurse else "direct")
    end = np.array([len(values)])
    frequency = D.infer_frequency(series.dates)
    if method == "recursive":
        if not can_recurse:
            raise PipelineError("recursive forecasts need a single value column (its other inputs would be "
                                "unknown after the end of the data); use method='direct'")
        known = None
        if values.shape[1] > 1:  # the calendar of the steps to come
            dates = D.future_dates(series.dates, frequency, h)
            if dates is None:
                raise PipelineError("the dates do not say which calendar follows them; use method='direct'")
            _, cal = D.calendar_features(list(series.dates[-1:]) + dates, frequency)
            known = np.concatenate([values, np.concatenate([np.zeros((h, 1)), cal[1:]], axis=1)])
        path = _recursive(model, prep, values, end, h, known=known)[0]
    elif method == "direct":
        direct_path = os.path.join(model_dir, DIRECT_FILE)
        if not os.path.exists(direct_path):
            raise PipelineError(f"{model_dir} has no direct model (trained with direct=False)")
        if h > cfg.horizon:
            raise PipelineError(f"the direct model forecasts at most {cfg.horizon} steps; asked for {h}")
        from ..models import load_model
        path = _direct(load_model(direct_path, compile=False), prep, values, end)[0][:h]
    else:
        raise PipelineError(f"method must be 'recursive' or 'direct', got {method!r}")
    return list(zip(_future_labels(series.dates, h), path.tolist()))


def _future_labels(dates, h):
    try:
        d = np.array(dates[-2:], dtype="datetime64[D]")
        step = d[1] - d[0]
        if step > np.timedelta64(0, "D"):
            return [str(d[1] + step * (k + 1)) for k in range(h)]
    except (ValueError, IndexError):
        pass
    return [f"+{k + 1}" for k in range(h)]
