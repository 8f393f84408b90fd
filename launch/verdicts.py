"""Verdicts of the reproduction report: every record says how it is judged.

A record (``experiment``, ``variant``, ``metric``, ``value``, ``reference``,
``source``) carries a ``check``, one of

* ``{"kind": "within", "tol": t}``: ``|value - reference| <= t`` (``"relative":
  True``: ``t`` times ``|reference|``);
* ``{"kind": "at_least", "bound": b}`` / ``{"kind": "at_most", "bound": b}``;
* ``{"kind": "equal"}``: the value is the reference (a ranking, a string);
* ``{"kind": "shown", "what": ...}``: a qualitative result, what to look at;
* ``{"kind": "smoke", "full": command, "time": ...}``: the quick preset only shows
  that the run works; the full run and its time are named.

:func:`verdict` gives ``(label, text)``; ``label`` is one of :data:`LABELS`.
"""
from __future__ import annotations

import math

LABELS = ("reproduced", "not reproduced", "shown qualitatively", "smoke test")


def _num(x) -> str:
  return f"{x:.4g}" if isinstance(x, float) else str(x)


def _bounded(kind: str, value, check: dict) -> tuple[str, str]:
  b = check["bound"]
  ok = value >= b if kind == "at_least" else value <= b
  sign = ">=" if kind == "at_least" else "<="
  return ("reproduced", f"{sign} {_num(b)}") if ok else ("not reproduced", f"needs {sign} {_num(b)}")


def verdict(record: dict) -> tuple[str, str]:
  """``(label, text)`` of one record; a record without a usable check is an error."""
  where = f"{record.get('experiment')}/{record.get('variant')}: {record.get('metric')}"
  check = record.get("check")
  if not isinstance(check, dict) or "kind" not in check:
    raise ValueError(f"{where}: no check (every report row needs a verdict; see launch/verdicts.py).")
  kind, value, ref = check["kind"], record.get("value"), record.get("reference")
  if kind in ("within", "equal") and ref is None:
    raise ValueError(f"{where}: check {kind!r} needs a reference value.")
  if kind == "within":
    tol = check["tol"] * (abs(ref) if check.get("relative") else 1.0)
    ok = isinstance(value, (int, float)) and math.isfinite(value) and abs(value - ref) <= tol
    what = f"{check['tol']:.0%} of {_num(ref)}" if check.get("relative") else f"±{_num(tol)} of {_num(ref)}"
    return ("reproduced", f"within {what}") if ok else ("not reproduced", f"outside {what}")
  if kind in ("at_least", "at_most"):
    if not isinstance(value, (int, float)) or not math.isfinite(value):
      return "not reproduced", f"no finite value ({value!r})"
    return _bounded(kind, value, check)
  if kind == "equal":
    return ("reproduced", "as the reference") if value == ref else ("not reproduced", f"expected {ref}")
  if kind == "shown":
    return "shown qualitatively", check["what"]
  if kind == "smoke":
    return "smoke test", f"quick preset only; the full run: `{check['full']}` ({check['time']})"
  raise ValueError(f"{where}: unknown check kind {kind!r}.")


def counts(records: list[dict]) -> dict[str, int]:
  """How many records of each label (in :data:`LABELS` order, zeros left out)."""
  labels = [verdict(r)[0] for r in records]
  return {k: labels.count(k) for k in LABELS if k in labels}
