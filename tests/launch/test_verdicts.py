"""launch.verdicts on hand-made records."""
import pytest

from launch import verdicts


def rec(value, reference=None, **check):
  return {"experiment": "x", "variant": "v", "metric": "m", "value": value,
          "reference": reference, "source": "", "check": check}


@pytest.mark.parametrize("record, label, text", [
    (rec(0.995, 1.0, kind="within", tol=0.01), "reproduced", "within ±0.01 of 1"),
    (rec(0.98, 1.0, kind="within", tol=0.01), "not reproduced", "outside ±0.01 of 1"),
    (rec(105.0, 100.0, kind="within", tol=0.1, relative=True), "reproduced", "within 10% of 100"),
    (rec(115.0, 100.0, kind="within", tol=0.1, relative=True), "not reproduced", "outside 10%"),
    (rec(float("nan"), 1.0, kind="within", tol=0.5), "not reproduced", "outside"),
    (rec(0.33, kind="at_least", bound=0.318), "reproduced", ">= 0.318"),
    (rec(0.30, kind="at_least", bound=0.318), "not reproduced", "needs >= 0.318"),
    (rec(0.05, kind="at_most", bound=0.1), "reproduced", "<= 0.1"),
    (rec(float("inf"), kind="at_most", bound=0.1), "not reproduced", "no finite value"),
    (rec("peeky > reversed", "peeky > reversed", kind="equal"), "reproduced", "as the reference"),
    (rec("reversed > peeky", "peeky > reversed", kind="equal"), "not reproduced",
     "expected peeky > reversed"),
    (rec("year: month, week", kind="shown", what="neighbours by cosine"), "shown qualitatively",
     "neighbours by cosine"),
    (rec(0.004, kind="smoke", full="python -m x --full", time="40 min"), "smoke test",
     "`python -m x --full` (40 min)"),
])
def test_verdicts(record, label, text):
  got_label, got_text = verdicts.verdict(record)
  assert got_label == label and text in got_text


@pytest.mark.parametrize("record, message", [
    ({"experiment": "x", "variant": "v", "metric": "m", "value": 1.0}, "x/v: m: no check"),
    (rec(1.0, None, kind="within", tol=0.1), "needs a reference"),
    (rec(1.0, 1.0, kind="guess"), "unknown check kind 'guess'"),
])
def test_a_row_without_a_usable_check_is_an_error(record, message):
  with pytest.raises(ValueError, match=message):
    verdicts.verdict(record)


def test_counts_in_label_order():
  rs = [rec(1.0, 1.0, kind="within", tol=0.1), rec(2.0, 1.0, kind="within", tol=0.1),
        rec(1.0, 1.0, kind="within", tol=0.1), rec("a", kind="shown", what="w")]
  assert verdicts.counts(rs) == {"reproduced": 2, "not reproduced": 1, "shown qualitatively": 1}
