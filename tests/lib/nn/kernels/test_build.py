"""Building the fused kernels: a failed build is one line naming the cause, and leaves
nothing half-written in the cache."""
import pytest

from lib.nn.kernels import build


def test_a_failed_compile_is_one_line(tmp_path, monkeypatch):
  monkeypatch.setenv("CXX", "false")
  target = tmp_path / "rnn_cpu-test.so"
  with pytest.raises(build.KernelError, match=r"^false failed on rnn_cpu\.cc: ") as err:
    build._compile(target)
  assert "\n" not in str(err.value)
  assert list(tmp_path.iterdir()) == []


def test_a_missing_compiler_is_named(tmp_path, monkeypatch):
  monkeypatch.delenv("CXX", raising=False)
  monkeypatch.setenv("PATH", str(tmp_path))
  with pytest.raises(build.KernelError, match=r"no C\+\+ compiler \(g\+\+, c\+\+ or \$CXX\)"):
    build._compile(tmp_path / "x.so")


def test_the_library_name_follows_source_flags_and_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("RNNLAB_KERNEL_CACHE", str(tmp_path))
  path = build._library_path()
  assert path.parent == tmp_path and path.name.startswith("rnn_cpu-") and path.suffix == ".so"
  monkeypatch.setattr(build, "FLAGS", build.FLAGS + ("-DOTHER",))
  assert build._library_path() != path
