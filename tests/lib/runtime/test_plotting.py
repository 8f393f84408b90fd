"""lib.runtime.plotting: legends where a figure has more than one curve."""
from lib.runtime import plotting


def _figure_of(monkeypatch, draw):
  got = {}
  real = plotting._save

  def keep(fig, path):
    got["fig"] = fig
    return real(fig, path)
  monkeypatch.setattr(plotting, "_save", keep)
  draw()
  return got["fig"]


def test_panels_with_other_curves_get_their_own_legend(monkeypatch, tmp_path):
  both = {"train": ([1, 2], [3.0, 2.0]), "eval": ([1, 2], [3.5, 2.5])}
  fig = _figure_of(monkeypatch, lambda: plotting.plot_panels(
      [("loss", "nats", both), ("accuracy", "acc", both), ("chrF", "chrF", {"eval": ([1, 2], [5, 9])})],
      str(tmp_path / "p.png")))
  legends = [ax.get_legend() for ax in fig.axes]
  labels = [None if lg is None else [t.get_text() for t in lg.get_texts()] for lg in legends]
  assert labels == [None, ["train", "eval"], ["eval"]]


def test_reliability_and_heatmaps_write_pngs(tmp_path):
  import numpy as np
  p = plotting.plot_reliability({"a": ([0.2, 0.6], [0.1, 0.7]), "b": ([0.5, np.nan], [0.4, np.nan])},
                                str(tmp_path / "r.png"))
  h = plotting.plot_heatmaps([("x -> y", np.eye(3), list("abc"), list("xyz"))], str(tmp_path / "h.png"))
  assert (tmp_path / "r.png").stat().st_size > 5_000 and (tmp_path / "h.png").stat().st_size > 5_000
  assert p.endswith("r.png") and h.endswith("h.png")


def test_japanese_text_draws_with_every_glyph_and_leaves_the_global_font_alone(tmp_path):
  """The notes' language pair: an attention heatmap's Japanese title and ticks."""
  import warnings
  import matplotlib
  import numpy as np
  before = list(matplotlib.rcParams["font.family"])
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # a missing glyph warns: make it fail here
    plotting.plot_heatmaps([("ねこが すき です", np.eye(3), ["ねこ", "が", "すき"],
                             ["I", "like", "cats"])], str(tmp_path / "attention.png"),
                           title="英語から日本語へ")
  assert plotting.font_families()[-1] == plotting.CJK_FONT
  assert list(matplotlib.rcParams["font.family"]) == before
  assert (tmp_path / "attention.png").stat().st_size > 5000
