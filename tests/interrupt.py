"""A run interrupted at a given step (Ctrl-C as the batch source is asked for it), then resumed."""
import pytest


def cut_then_resume(monkeypatch, cls, method: str, step: int, run):
  """Calls ``run()`` with ``cls.method(self, step_)`` raising ``KeyboardInterrupt`` at
  ``step`` (the run saves and re-raises), then ``run()`` again unpatched; returns the
  second call's result (the resumed run's summary)."""
  real = getattr(cls, method)

  def stopping(self, s, *args, **kwargs):
    if s == step:
      raise KeyboardInterrupt("simulated stop")
    return real(self, s, *args, **kwargs)

  with monkeypatch.context() as m:
    m.setattr(cls, method, stopping)
    with pytest.raises(KeyboardInterrupt):
      run()
  return run()
