"""Loss-curve figures (PNG) of the kind the notes show.

Figures are ``matplotlib.figure.Figure`` objects drawn on the Agg canvas:
nothing here touches pyplot's global state or the process's backend. Text falls back
to a CJK font (IPAexGothic from ``matplotlib-fontja``: kana and the JIS kanji, so
Japanese and most Chinese Han characters) after the default family, inside each
figure's own ``rc_context``; the font is registered with matplotlib's font manager at
the first figure, never on import (``matplotlib_fontja`` itself, which would switch
every figure's family, is not imported).
"""
from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any, Callable, Mapping, Optional, Sequence, TypeVar

import matplotlib
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np

CJK_FONT = "IPAexGothic"
F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def font_families() -> tuple[str, ...]:
  """The default family, then the CJK font when ``matplotlib-fontja`` is installed."""
  spec = importlib.util.find_spec("matplotlib_fontja")  # finds it; runs none of its code
  folder = (spec.submodule_search_locations or [None])[0] if spec else None
  path = os.path.join(folder, "fonts", "ipaexg.ttf") if folder else ""
  if not os.path.isfile(path):
    return ("sans-serif",)
  font_manager.fontManager.addfont(path)
  return ("sans-serif", CJK_FONT)


def _fonts(fn: F) -> F:
  """Draws ``fn``'s figure with :func:`font_families` (glyphs the default lacks fall back)."""
  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with matplotlib.rc_context({"font.family": list(font_families())}):
      return fn(*args, **kwargs)
  return wrapped  # type: ignore[return-value]


def _figure(figsize: tuple[float, float], dpi: int = 110) -> Figure:
  fig = Figure(figsize=figsize, dpi=dpi)
  FigureCanvasAgg(fig)  # PNG rendering, no display, no pyplot
  return fig


def _save(fig: Figure, path: str) -> str:
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path)
  return path


@_fonts
def plot_curves(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str, *,
                title: str = "", xlabel: str = "step", ylabel: str = "loss",
                logy: bool = False, ends: Optional[Mapping[str, tuple[float, float]]] = None
                ) -> str:
  """One line per named ``(x, y)`` series; non-positive values are dropped on a log
  axis. ``ends``: a cross at ``(x, y)`` on the named series (where a trial stopped)."""
  fig = _figure((6.4, 4.2))
  ax = fig.subplots()
  for name, (x, y) in series.items():
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(y) & ((y > 0) if logy else True)
    (line,) = ax.plot(x[keep], y[keep], label=name, lw=1.4)
    if ends and name in ends:
      ax.plot(*ends[name], marker="x", ms=9, mew=2, color=line.get_color())
  if logy:
    ax.set_yscale("log")
  ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
  ax.grid(alpha=0.3, which="both")
  if len(series) > 1:
    ax.legend()
  return _save(fig, path)


@_fonts
def plot_surface(x: np.ndarray, y: np.ndarray, z_YxX: np.ndarray, path: str, *,
                 title: str = "", xlabel: str = "", ylabel: str = "",
                 paths: Optional[Mapping[str, tuple[Sequence[float], Sequence[float]]]] = None,
                 mark: Optional[tuple[float, float]] = None) -> str:
  """A log-scaled filled contour of ``z`` with optional optimisation paths on top."""
  fig = _figure((6.0, 5.0))
  ax = fig.subplots()
  cs = ax.contourf(x, y, np.log10(np.maximum(z_YxX, 1e-12)), levels=30, cmap="viridis")
  fig.colorbar(cs, ax=ax, label="log10 cost")
  for name, (px, py) in (paths or {}).items():
    ax.plot(px, py, ".-", ms=2, lw=1, label=name)
  if mark is not None:
    ax.plot(*mark, "r*", ms=12, label="optimum")
  ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(x.min(), x.max()), ylim=(y.min(), y.max()))
  if paths or mark is not None:
    ax.legend(loc="lower left", fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  return path


@_fonts
def plot_panels(panels: Sequence[tuple[str, str, Mapping[str, tuple[Sequence[float], Sequence[float]]]]],
                path: str, *, xlabel: str = "epoch", title: str = "",
                logy: Sequence[bool] = ()) -> str:
  """Side-by-side panels ``(title, ylabel, series)`` in one PNG (e.g. the variants' loss
  and accuracy curves, as notes 002 compare them). Panels with the same curves share
  one legend (on the last of them); a panel with other curves gets its own."""
  fig = _figure((5.2 * len(panels), 4.2))
  axes = fig.subplots(1, len(panels))
  axes = np.atleast_1d(axes)
  for i, (ax, (sub, ylabel, series)) in enumerate(zip(axes, panels)):
    log = bool(logy[i]) if i < len(logy) else False
    for name, (x, y) in series.items():
      x, y = np.asarray(x, float), np.asarray(y, float)
      keep = np.isfinite(y) & ((y > 0) if log else True)
      ax.plot(x[keep], y[keep], label=name, lw=1.4, marker="." if len(x) <= 60 else None)
    if log:
      ax.set_yscale("log")
    ax.set(title=sub, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3, which="both")
  if any(len(s) > 1 for _, _, s in panels):
    for i, (_, _, series) in enumerate(panels):
      later = [list(s) for _, _, s in panels[i + 1:]]
      if series and list(series) not in later:
        axes[i].legend(fontsize=8)
  if title:
    fig.suptitle(title)
  return _save(fig, path)


@_fonts
def plot_scatter_panels(panels: Sequence[tuple[str, Mapping[str, tuple[Sequence[Any], Sequence[float]]]]],
                        path: str, *, ylabel: str = "") -> str:
  """One panel per ``(xlabel, {name: (x, y)})``: points. Numbers on a log x axis when
  every x is positive and they span a factor of 3 or more (learning rates swept over
  orders of magnitude); anything else (names, booleans) on a categorical axis."""
  fig = _figure((4.2 * len(panels), 3.6))
  axes = np.atleast_1d(fig.subplots(1, len(panels)))
  for ax, (xlabel, series) in zip(axes, panels):
    xs = [x for xx, _ in series.values() for x in xx]
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
    ticks = [] if numeric else sorted({str(x) for x in xs})
    for name, (x, y) in series.items():
      pos = np.asarray(x, float) if numeric else np.asarray([ticks.index(str(v)) for v in x], float)
      style = "o-" if name == "mean" else "o"
      ax.plot(pos, np.asarray(y, float), style, alpha=0.8, label=name)
    arr = np.asarray(xs, float) if numeric else np.zeros(0)
    if arr.size and (arr > 0).all() and arr.max() >= 3 * arr.min():
      ax.set_xscale("log")
    if ticks:
      ax.set_xticks(range(len(ticks)), ticks, rotation=30 if len(ticks) > 4 else 0)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
      ax.legend()
  return _save(fig, path)


@_fonts
def plot_heatmaps(panels: Sequence[tuple[str, np.ndarray, Sequence[str], Sequence[str]]],
                  path: str, *, title: str = "", xlabel: str = "", ylabel: str = "") -> str:
  """One heatmap per ``(title, matrix_RxC, column_labels, row_labels)`` panel, stacked
  (attention weights: rows the output symbols, columns the input symbols)."""
  fig = _figure((max(4.0, 0.22 * max(m.shape[1] for _, m, _, _ in panels) + 2.0),
                 sum(0.22 * m.shape[0] + 1.2 for _, m, _, _ in panels)))
  axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
  for ax, (name, m, cols, rows) in zip(axes, panels):
    im = ax.imshow(m, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(cols)), list(cols), fontsize=7)
    ax.set_yticks(range(len(rows)), list(rows), fontsize=7)
    ax.set(title=name, xlabel=xlabel, ylabel=ylabel)
    fig.colorbar(im, ax=ax, fraction=0.03)
  if title:
    fig.suptitle(title)
  return _save(fig, path)


@_fonts
def plot_reliability(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str, *,
                     title: str = "") -> str:
  """Reliability diagram: accuracy against mean confidence per bin, one line per model,
  beside the diagonal of perfect calibration."""
  fig = _figure((5.5, 5.0))
  ax = fig.subplots()
  ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
  for name, (conf, acc) in curves.items():
    conf, acc = np.asarray(conf, float), np.asarray(acc, float)
    keep = np.isfinite(conf) & np.isfinite(acc)
    ax.plot(conf[keep], acc[keep], "o-", ms=3, label=name)
  ax.set(title=title, xlabel="confidence (top-class probability)", ylabel="accuracy",
         xlim=(0, 1), ylim=(0, 1))
  ax.legend(loc="upper left", fontsize=8)
  return _save(fig, path)
