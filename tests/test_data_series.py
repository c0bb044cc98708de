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
