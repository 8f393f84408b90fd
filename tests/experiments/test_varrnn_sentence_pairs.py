import numpy as np
import pytest

from experiments.varrnn import sentence_pairs
from lib.data import word_vectors
from lib.data.vocab import Vocab
from lib.errors import DataError

# Hand-made STS-B rows in the benchmark's layout: genre, file, year, id, score,
# sentence 1, sentence 2, and on some rows two extra source columns.
STSB = (
    "main-captions\tMSRvid\t2012test\t0001\t5.000\tA plane is taking off.\tAn air plane is taking off.\n"
    "main-captions\tMSRvid\t2012test\t0004\t3.800\tA man is playing a large flute.\tA man is playing a flute.\n"
    "main-news\theadlines\t2013\t0012\t0.400\tThe \"quick\" fox.\tMarkets fell on Monday.\tsrc1\tsrc2\n"
    "main-forum\tdeft-forum\t2014\t0033\t2.500\tI don't think so.\tI do not think so!\n"
)


def test_stsb_reader_takes_columns_5_6_7_and_rounds_scores(tmp_path):
  path = tmp_path / "sts-train.csv"
  path.write_text(STSB)
  pairs = sentence_pairs.read_stsb(str(path))
  assert len(pairs) == 4
  np.testing.assert_array_equal(pairs.y, [5, 4, 0, 3])  # 2.5 rounds half up
  assert pairs.a[0] == ["a", "plane", "is", "taking", "off", "."]
  assert pairs.b[2] == ["markets", "fell", "on", "monday", "."]  # extra columns ignored
  assert pairs.a[2] == ["the", '"', "quick", '"', "fox", "."]     # quotes are not CSV quoting
  assert pairs.a[3][:3] == ["i", "do", "n't"]


@pytest.mark.parametrize("row, expect", [
    ("main\tx\t2012\t1\t4.0\tonly one sentence\n", "at least 7 tab-separated columns"),
    ("main\tx\t2012\t1\tfive\ta\tb\n", "label 'five' is not a number"),
    ("main\tx\t2012\t1\t7.5\ta\tb\n", "outside 0..5"),
    ("main\tx\t2012\t1\t2\t \tb\n", "empty sentence"),
])
def test_stsb_reader_names_the_bad_line(tmp_path, row, expect):
  path = tmp_path / "sts-dev.csv"
  path.write_text(STSB + row)
  with pytest.raises(DataError, match=expect) as e:
    sentence_pairs.read_stsb(str(path))
  assert f"{path}:5" in str(e.value)


def test_pairs_tsv_reader(tmp_path):
  path = tmp_path / "pairs.tsv"
  path.write_text("A cat sat.\tThe cat sat.\t5\n\nDogs bark\tStocks rose\t0.2\n")
  pairs = sentence_pairs.read_pairs_tsv(str(path))
  np.testing.assert_array_equal(pairs.y, [5, 0])
  assert pairs.b[1] == ["stocks", "rose"]
  path.write_text("A cat sat.\tThe cat sat.\n")
  with pytest.raises(DataError, match=r"pairs.tsv:1: expected 3 tab-separated fields"):
    sentence_pairs.read_pairs_tsv(str(path))


SICK_HEADER = ("pair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\t"
               "entailment_AB\tentailment_BA\tsentence_A_original\tsentence_B_original\t"
               "sentence_A_dataset\tsentence_B_dataset\tSemEval_set")


def _sick_row(i, a, b, score, semeval):
  return "\t".join([str(i), a, b, "NEUTRAL", score, "A_neutral_B", "B_neutral_A", a, b,
                    "FLICKR", "FLICKR", semeval])


SICK = "\r\n".join([SICK_HEADER,
                     _sick_row(1, "A dog runs.", "A dog is running.", "4.6", "TRAIN"),
                     _sick_row(2, "A man cooks.", "A woman sings.", "1.0", "TEST"),
                     _sick_row(3, "Kids play.", "Children are playing.", "3", "TRIAL"),
                     _sick_row(4, "A cat sleeps.", "A cat is awake.", "1.4", "TRAIN"),
                     _sick_row(5, "Two men talk.", "Men are talking.", "5", "TEST")]) + "\r\n"


def test_sick_reader_keeps_the_sets_asked_for_and_maps_scores(tmp_path):
  path = tmp_path / "SICK.txt"
  path.write_bytes(SICK.encode())
  train = sentence_pairs.read(str(path), "sick", part="train")  # TRAIN and TRIAL rows
  test = sentence_pairs.read(str(path), "sick", part="test")
  np.testing.assert_array_equal(train.y, [5, 3, 1])  # 4.6 -> 4.5 -> 5; 3 -> 2.5 -> 3; 1.4 -> 1
  np.testing.assert_array_equal(test.y, [0, 5])
  assert train.b[1] == ["children", "are", "playing", "."]  # no '\r' left on any field
  assert len(sentence_pairs.read_sick(str(path), sets=("TRIAL",))) == 1
  assert [sentence_pairs.sick_class(str(s), "x") for s in (1, 1.4, 2, 3, 4, 4.6, 5)] == \
      [0, 1, 1, 3, 4, 5, 5]


@pytest.mark.parametrize("row, expect", [
    (_sick_row(6, "a", "b", "4", "TRAIN").rsplit("\t", 1)[0], "expected 12 tab-separated SICK"),
    (_sick_row(6, "a", "b", "high", "TRAIN"), "relatedness score 'high' \\(column 5\\) is not"),
    (_sick_row(6, "a", "b", "0.5", "TRAIN"), "outside 1..5"),
    (_sick_row(6, "a", "b", "2", "DEV"), "SemEval set 'DEV' \\(column 12\\)"),
    (_sick_row(6, " ", "b", "2", "TEST"), "empty sentence"),
])
def test_sick_reader_names_the_malformed_row(tmp_path, row, expect):
  path = tmp_path / "SICK.txt"
  path.write_bytes((SICK + row + "\r\n" + _sick_row(7, "c", "d", "3", "TEST")).encode())
  with pytest.raises(DataError, match=expect) as e:
    sentence_pairs.read(str(path), "sick", part="test")
  assert f"{path}:7:" in str(e.value)


def test_score_to_class_and_encode():
  assert [sentence_pairs.score_to_class(s) for s in (0.0, 0.49, 0.5, 2.5, 4.6, 5.0)] == [0, 0, 1, 3, 5, 5]
  vocab = Vocab(["a", "b", "<unk>"], unk="<unk>")
  ids, mask, cut = sentence_pairs.encode([["a", "b", "z"], [], ["b"] * 5], vocab, max_len=4)
  np.testing.assert_array_equal(ids, [[0, 1, 2, 0], [2, 0, 0, 0], [1, 1, 1, 1]])
  np.testing.assert_array_equal(mask.sum(1), [3, 1, 4])
  assert cut == 1


def test_word_vectors_round_trip_and_glove_format(tmp_path):
  words = ["cat", "dog", "the"]
  vecs = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
  path = tmp_path / "v.txt"
  word_vectors.write(str(path), words, vecs)
  assert path.read_text().splitlines()[0] == "3 4"
  got_words, got = word_vectors.read(str(path))
  assert got_words == words
  np.testing.assert_allclose(got, vecs, rtol=1e-5)
  glove = tmp_path / "glove.txt"
  glove.write_text("The 0.1 0.2\ncat 0.3 0.4\nthe 9 9\n")  # no header; lower-case duplicates
  w, v = word_vectors.read(str(glove), keep={"the", "dog"}, lower=True)
  assert w == ["the"] and v.tolist() == [[pytest.approx(0.1), pytest.approx(0.2)]]
  glove.write_text("cat 0.3 0.4\ndog 0.5\n")
  with pytest.raises(DataError, match=r"glove.txt:2: expected a word and 2 numbers"):
    word_vectors.read(str(glove))
  with pytest.raises(ValueError, match="white space"):
    word_vectors.write(str(path), ["a b"], vecs[:1])
