"""Tokenizer and pad_sequences behave as their Keras namesakes."""

import numpy as np
import pytest

from lstmfast.data import Tokenizer, pad_sequences, text_to_word_sequence, tokenizer_from_json


TEXTS = ["The cat sat on the mat.", "The dog ate my homework!", "the cat"]


def test_text_to_word_sequence_lowercases_and_drops_punctuation():
    assert text_to_word_sequence("Hello, World! It's  me.") == ["hello", "world", "it's", "me"]


def test_tokenizer_ranks_words_by_frequency_with_ties_in_first_seen_order():
    tok = Tokenizer()
    tok.fit_on_texts(TEXTS)
    assert tok.word_index["the"] == 1
    assert tok.word_index["cat"] == 2
    assert tok.word_index["sat"] == 3  # first seen among the words counted once
    assert tok.document_count == 3
    assert tok.word_counts["the"] == 4
    assert tok.word_docs["the"] == 3


def test_tokenizer_num_words_limit_maps_rare_words_to_oov():
    tok = Tokenizer(num_words=3, oov_token="<OOV>")
    tok.fit_on_texts(TEXTS)
    assert tok.word_index["<OOV>"] == 1
    assert tok.word_index["the"] == 2
    # only indices < 3 survive: <OOV>=1, the=2; everything else becomes 1
    assert tok.texts_to_sequences(["the cat flew"]) == [[2, 1, 1]]
    assert tok.vocabulary_size == 3


def test_tokenizer_without_oov_token_drops_unknown_and_rare_words():
    tok = Tokenizer(num_words=3)
    tok.fit_on_texts(TEXTS)
    assert tok.texts_to_sequences(["the cat zebra"]) == [[1, 2]]


def test_tokenizer_char_level_keeps_every_character():
    tok = Tokenizer(char_level=True, lower=False)
    tok.fit_on_texts(["abba", "c!"])
    assert tok.texts_to_sequences(["ab!"]) == [[1, 2, 4]]
    assert tok.sequences_to_texts([[1, 2, 4]]) == ["ab!"]


def test_tokenizer_json_round_trip_gives_the_same_sequences():
    tok = Tokenizer(num_words=5, oov_token="?")
    tok.fit_on_texts(TEXTS)
    back = tokenizer_from_json(tok.to_json())
    assert back.word_index == tok.word_index
    assert back.index_word == tok.index_word
    assert back.num_words == 5 and back.oov_token == "?"
    assert back.texts_to_sequences(TEXTS) == tok.texts_to_sequences(TEXTS)
    assert Tokenizer.from_json(tok.to_json()).word_counts == tok.word_counts


def test_tokenizer_rejects_a_single_string_and_bad_num_words():
    tok = Tokenizer()
    with pytest.raises(TypeError, match="list of strings"):
        tok.fit_on_texts("just one string")
    with pytest.raises(ValueError, match="num_words"):
        Tokenizer(num_words=0)


def test_pad_sequences_defaults_pad_and_truncate_at_the_front_as_int32():
    out = pad_sequences([[1, 2, 3], [4], []], maxlen=2)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[2, 3], [0, 4], [0, 0]])


def test_pad_sequences_post_padding_and_post_truncation():
    out = pad_sequences([[1, 2, 3], [4]], maxlen=2, padding="post", truncating="post", value=9)
    np.testing.assert_array_equal(out, [[1, 2], [4, 9]])


def test_pad_sequences_without_maxlen_uses_the_longest():
    out = pad_sequences([[1], [1, 2, 3]])
    assert out.shape == (2, 3)


def test_pad_sequences_keeps_item_shape_and_float_dtype():
    seqs = [np.ones((2, 3)), np.ones((1, 3))]
    out = pad_sequences(seqs, maxlen=3, dtype="float32")
    assert out.shape == (2, 3, 3) and out.dtype == np.float32
    assert out[1, :2].sum() == 0 and out[1, 2].sum() == 3


def test_pad_sequences_names_bad_arguments():
    with pytest.raises(ValueError, match="padding"):
        pad_sequences([[1]], padding="middle")
    with pytest.raises(ValueError, match="truncating"):
        pad_sequences([[1]], truncating="both")
    with pytest.raises(ValueError, match="position 1"):
        pad_sequences([[1], 5])
