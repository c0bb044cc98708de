"""The forecasting pipeline end to end on a slice of the CO2 series: it beats the naive baselines."""

import json
import os

import numpy as np
import pytest

from lstmfast.data import load_co2
from lstmfast.pipelines import PipelineError, forecasting


@pytest.fixture(scope="module")
def co2_slice(tmp_path_factory):
    """The last 700 weeks of the built-in series, as a user's CSV."""
    s = load_co2()
    path = tmp_path_factory.mktemp("data") / "co2_tail.csv"
    with open(path, "w") as f:
        f.write("date,co2\n")
        for d, v in zip(s.dates[-700:], s.values[-700:, 0]):
            f.write(f"{d},{v}\n")
    return str(path)


@pytest.fixture(scope="module")
def trained(co2_slice, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("models") / "forecast")
    result = forecasting.train(out=out, verbose=0, data=co2_slice, n_steps=52, horizon=26, epochs=25,
                               patience=25, holt_winters=False, seed=0, threads=1)
    return result


def test_training_beats_naive_and_seasonal_naive_on_the_held_out_weeks(trained):
    m = trained["metrics"]["models"]
    assert m["lstm"]["rmse_one_step"] < m["naive"]["rmse_one_step"]
    assert m["lstm"]["rmse_one_step"] < m["seasonal_naive_52"]["rmse_one_step"]
    best_lstm = min(m["lstm"]["rmse_26_step"], m["lstm_direct"]["rmse_26_step"])
    assert best_lstm < min(m["naive"]["rmse_26_step"], m["seasonal_naive_52"]["rmse_26_step"])


def test_model_directory_holds_model_preprocessing_and_metrics(trained):
    d = trained["model_dir"]
    for name in ("pipeline.json", "model.lstmfast", "direct.lstmfast", "history.json", "metrics.json"):
        assert os.path.exists(os.path.join(d, name)), name
    with open(os.path.join(d, "pipeline.json")) as f:
        marker = json.load(f)
    assert marker["pipeline"] == "forecast"
    assert marker["preprocessing"]["n_steps"] == 52
    # the scaler saw the training part only: its mean is below the series' overall mean (rising trend)
    assert marker["preprocessing"]["scaler"]["a"][0] < float(np.mean(load_co2().values[-700:]))


def test_evaluate_from_disk_reproduces_the_training_run(trained, co2_slice):
    again = forecasting.evaluate(trained["model_dir"], verbose=0)
    assert again["models"]["lstm"]["rmse_one_step"] == pytest.approx(
        trained["metrics"]["models"]["lstm"]["rmse_one_step"], rel=1e-5)


def test_predict_continues_the_series_with_dates(trained):
    out = forecasting.predict(trained["model_dir"], horizon=5)
    assert [d for d, _ in out] == ["2002-01-05", "2002-01-12", "2002-01-19", "2002-01-26", "2002-02-02"]
    assert all(365 < v < 380 for _, v in out)
    direct = forecasting.predict(trained["model_dir"], horizon=5, method="direct")
    assert len(direct) == 5
    with pytest.raises(PipelineError, match="at most 26"):
        forecasting.predict(trained["model_dir"], horizon=30, method="direct")


def test_plot_writes_forecast_and_history_pngs(trained):
    pytest.importorskip("matplotlib")
    m = forecasting.evaluate(trained["model_dir"], plot=True, verbose=0)
    assert {os.path.basename(p) for p in m["plots"]} == {"forecast.png", "history.png"}


def test_a_sentiment_model_directory_is_refused(trained, tmp_path):
    from lstmfast.pipelines import sentiment
    with pytest.raises(PipelineError, match="made by the 'forecast' pipeline"):
        sentiment.predict(trained["model_dir"], ["fine"])


@pytest.fixture(scope="module")
def daily(tmp_path_factory):
    """Three years of the built-in US daily births, as a user's CSV with a weekday column."""
    from lstmfast.data import load_us_births

    s = load_us_births()
    path = tmp_path_factory.mktemp("data") / "births.csv"
    names = [c.split("=")[1] for c in s.columns[1:]]
    with open(path, "w") as f:
        f.write("date,births,weekday\n")
        for d, row in zip(s.dates[-1100:], s.values[-1100:]):
            f.write(f"{d},{row[0]:.0f},{names[int(np.argmax(row[1:]))]}\n")
    return str(path)


def test_a_daily_series_gets_its_seasons_window_and_calendar_from_its_dates(daily, tmp_path):
    r = forecasting.train(out=str(tmp_path / "m"), verbose=0, data=daily, columns="births", epochs=3,
                          test_size=120, holt_winters=False, seed=0, threads=1)
    m = r["metrics"]
    assert m["frequency"] == "daily" and m["seasons"] == [7, 364, 365] and m["horizon"] == 56
    assert {"seasonal_naive_7", "seasonal_naive_364", "seasonal_naive_365"} <= set(m["models"])
    assert m["models"]["lstm"]["rmse_56_step"] is not None  # recursive: the calendar of the days ahead is known
    assert m["beats_baselines"]["against"] == ["naive", "seasonal_naive_7", "seasonal_naive_364", "seasonal_naive_365"]
    with open(os.path.join(r["model_dir"], "pipeline.json")) as f:
        marker = json.load(f)
    assert marker["features"] == ["births", "weekday_sin", "weekday_cos", "day_of_year_sin", "day_of_year_cos"]
    assert marker["preprocessing"]["relative"] == [True, False, False, False, False]
    assert marker["preprocessing"]["n_steps"] == 28
    out = forecasting.predict(r["model_dir"], horizon=3)
    assert [d for d, _ in out] == ["1989-01-01", "1989-01-02", "1989-01-03"]


def test_a_weekday_column_is_one_hot_and_only_the_direct_model_forecasts_past_the_data(daily, tmp_path):
    r = forecasting.train(out=str(tmp_path / "m"), verbose=0, data=daily, epochs=2, horizon=7, test_size=60,
                          holt_winters=False, seed=0, threads=1)
    with open(os.path.join(r["model_dir"], "pipeline.json")) as f:
        marker = json.load(f)
    assert marker["categories"] == {"weekday": ["Fri", "Mon", "Sat", "Sun", "Thu", "Tue", "Wed"]}
    assert r["metrics"]["models"]["lstm"]["rmse_7_step"] is None  # the weekday column is unknown ahead
    assert len(forecasting.predict(r["model_dir"])) == 7  # direct
    with pytest.raises(PipelineError, match="recursive forecasts need a single value column"):
        forecasting.predict(r["model_dir"], method="recursive")
