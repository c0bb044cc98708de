"""Sliding windows, scalers and splits keep shapes right and the test part out of fitting."""

import numpy as np
import pytest

from lstmfast.data import (
    MinMaxScaler, StandardScaler, check_disjoint, chronological_split, interpolate_missing,
    scaler_from_config, sliding_windows, train_val_test_split, window_targets_index,
)


def test_sliding_windows_pairs_each_window_with_the_steps_that_follow():
    s = np.arange(10.0)
    X, y = sliding_windows(s, n_steps=3, horizon=2)
    assert X.shape == (6, 3, 1) and y.shape == (6, 2)
    np.testing.assert_array_equal(X[0, :, 0], [0, 1, 2])
    np.testing.assert_array_equal(y[0], [3, 4])
    np.testing.assert_array_equal(y[-1], [8, 9])
    np.testing.assert_array_equal(window_targets_index(10, 3, 2), np.arange(6) + 3)


def test_sliding_windows_multivariate_input_with_one_target_column():
    s = np.stack([np.arange(6.0), 10 * np.arange(6.0)], axis=1)
    X, y = sliding_windows(s, n_steps=2, target_column=1)
    assert X.shape == (4, 2, 2)
    np.testing.assert_array_equal(y[:, 0], [20, 30, 40, 50])


def test_sliding_windows_rejects_a_series_too_short():
    with pytest.raises(ValueError, match="too short"):
        sliding_windows(np.arange(3.0), n_steps=3)
    with pytest.raises(ValueError, match="n_steps"):
        sliding_windows(np.arange(3.0), n_steps=0)


def test_minmax_scaler_uses_training_statistics_only():
    train, test = np.array([0.0, 10.0]), np.array([20.0])
    sc = MinMaxScaler().fit(train)
    np.testing.assert_allclose(sc.transform(test), [2.0])  # beyond 1: test max never seen
    np.testing.assert_allclose(sc.inverse_transform(sc.transform(test)), test)


def test_standard_scaler_round_trips_through_its_config():
    x = np.random.default_rng(0).normal(5, 2, size=(50, 3))
    sc = StandardScaler().fit(x)
    z = sc.transform(x)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    back = scaler_from_config(sc.get_config())
    np.testing.assert_allclose(back.transform(x), z)
    np.testing.assert_allclose(back.inverse_transform(z[:, 1], column=1), x[:, 1])


def test_scaler_before_fit_says_to_fit_first():
    with pytest.raises(RuntimeError, match="fit"):
        MinMaxScaler().transform([1.0])


def test_chronological_split_puts_test_last_and_validation_before_it():
    tr, va, te = chronological_split(100, test_size=10, val_size=0.2)
    assert (tr, va, te) == (slice(0, 70), slice(70, 90), slice(90, 100))
    with pytest.raises(ValueError, match="nothing to train"):
        chronological_split(10, test_size=10)


def test_interpolate_missing_fills_gaps_linearly_and_counts_them():
    a, n = interpolate_missing([1.0, np.nan, 3.0, np.nan])
    np.testing.assert_allclose(a, [1, 2, 3, 3])
    assert n == 2


def test_random_split_is_disjoint_reproducible_and_stratified():
    labels = np.array([0] * 80 + [1] * 20)
    tr, va, te = train_val_test_split(100, test_size=0.2, val_size=0.1, seed=3, stratify=labels)
    check_disjoint(train=tr, val=va, test=te)
    assert len(tr) + len(va) + len(te) == 100 and len(te) == 20 and len(va) == 10
    assert labels[te].sum() == 4  # 20% positives kept
    again = train_val_test_split(100, test_size=0.2, val_size=0.1, seed=3, stratify=labels)
    np.testing.assert_array_equal(again[2], te)


def test_random_split_keeps_duplicates_in_one_part():
    groups = ["a", "b", "a", "c", "b", "d", "a", "e", "f", "g"]
    tr, va, te = train_val_test_split(10, test_size=3, val_size=2, seed=0, groups=groups)
    part = {}
    for name, idx in (("train", tr), ("val", va), ("test", te)):
        for i in idx:
            assert part.setdefault(groups[i], name) == name


def test_check_disjoint_reports_shared_items():
    with pytest.raises(ValueError, match="train and test share 1"):
        check_disjoint(train=np.array([1, 2]), test=np.array([2, 3]))


# --- what a series' dates say --------------------------------------------------------------------

def test_the_frequency_and_its_seasons_come_from_the_dates():
    from lstmfast.data import infer_frequency

    days = [str(np.datetime64("2020-01-01") + k) for k in range(30)]
    weeks = [str(np.datetime64("2020-01-04") + 7 * k) for k in range(30)]
    months = [f"2020-{m:02d}-01" for m in range(1, 13)]
    hours = [str(np.datetime64("2020-01-01T00:00") + np.timedelta64(k, "h")) for k in range(30)]
    assert infer_frequency(days).seasons == (7, 364, 365)
    assert infer_frequency(weeks).seasons == (52,) and infer_frequency(weeks).horizon == 52
    assert infer_frequency(months).name == "monthly" and infer_frequency(months).season == 12
    assert infer_frequency(hours).seasons == (24, 168)
    assert infer_frequency(["a", "b", "c"]).name == "unknown"
    days_with_a_gap = days[:10] + days[11:]  # one missing day leaves the median spacing alone
    assert infer_frequency(days_with_a_gap).name == "daily"


def test_calendar_features_place_each_day_in_its_week_and_year():
    from lstmfast.data import calendar_features, future_dates, infer_frequency

    days = ["2024-01-01", "2024-01-02", "2024-01-07", "2024-12-31"]  # a Monday, Tuesday, Sunday
    names, v = calendar_features(days, infer_frequency(["2024-01-01", "2024-01-02"]))
    assert names == ["weekday_sin", "weekday_cos", "day_of_year_sin", "day_of_year_cos"]
    weekday = np.round(np.arctan2(v[:, 0], v[:, 1]) / (2 * np.pi) * 7) % 7
    np.testing.assert_array_equal(weekday, [0, 1, 6, 1])  # Monday is 0; 2024-12-31 a Tuesday
    assert v[3, 2] < 0 < v[3, 3]  # the year's last day sits just before its first
    weekly = infer_frequency(["2001-12-22", "2001-12-29"])
    assert future_dates(["2001-12-22", "2001-12-29"], weekly, 2) == ["2002-01-05", "2002-01-12"]
    monthly = infer_frequency(["2020-11-01", "2020-12-01"])
    assert future_dates(["2020-11-01", "2020-12-01"], monthly, 2) == ["2021-01-01", "2021-02-01"]


def test_a_column_of_names_arrives_one_hot_encoded(tmp_path):
    from lstmfast.data import DataError, load_series_csv, load_us_births

    p = tmp_path / "s.csv"
    p.write_text("date,sales,day\n2024-01-01,3,Mon\n2024-01-02,,Tue\n2024-01-03,5,Mon\n")
    s = load_series_csv(p)
    assert s.columns == ["sales", "day=Mon", "day=Tue"] and s.target == "sales"
    np.testing.assert_array_equal(s.values, [[3, 1, 0], [4, 0, 1], [5, 1, 0]])
    assert s.categories == {"day": ["Mon", "Tue"]}
    again = load_series_csv(p, categories={"day": ["Mon", "Tue", "Wed"]})  # a model's layout
    assert again.columns == ["sales", "day=Mon", "day=Tue", "day=Wed"]
    with pytest.raises(DataError, match="'Tue', a category the model does not know"):
        load_series_csv(p, categories={"day": ["Mon"]})
    with pytest.raises(DataError, match="target 'day' holds no numbers"):
        load_series_csv(p, target="day")
    p.write_text("date,sales\n2024-01-01,3\n2024-01-02,oops\n")
    with pytest.raises(DataError, match="line 3: column 'sales' holds 'oops'"):
        load_series_csv(p)
    births = load_us_births()
    assert len(births) == 7305 and births.dates[0] == "1969-01-01" and births.values[0, 0] == 8486
    assert births.columns[0] == "births" and len(births.columns) == 8
