"""``lib``'s packages import only the ones below them, in the order WORKSPACE.md's map
states; nothing in ``lib`` imports ``experiments`` or ``launch``."""
import ast
import pathlib

import lib

# Bottom to top. `errors` and `metrics` are modules every package may import.
ORDER = ("errors", "metrics", "data", "losses", "nn", "runtime", "train", "eval", "sweeps")
ROOT = pathlib.Path(lib.__file__).parent


def _imports(path: pathlib.Path):
  """Every module a file imports, at any depth (function-level imports too)."""
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      yield from (a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      if node.module == "lib":
        yield from (f"lib.{a.name}" for a in node.names)
      else:
        yield node.module


def _violations():
  for path in sorted(ROOT.rglob("*.py")):
    rel = path.relative_to(ROOT)
    if len(rel.parts) == 1 and rel.stem == "__init__":
      continue
    own = rel.parts[0].removesuffix(".py")
    for mod in _imports(path):
      top = mod.split(".")[0]
      if top in ("experiments", "launch"):
        yield f"lib/{rel} imports {mod}"
      if top != "lib" or mod == "lib":
        continue
      other = mod.split(".")[1]
      if other != own and ORDER.index(other) > ORDER.index(own):
        yield f"lib/{rel} ({own}) imports {mod} ({other} is above {own})"


def test_each_package_imports_only_those_below_it():
  assert list(_violations()) == []


def test_the_order_names_every_package():
  found = {p.name.removesuffix(".py") for p in ROOT.iterdir()
           if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")}
  assert found == set(ORDER)


def test_workspace_states_the_order():
  text = " ".join((ROOT.parent / "WORKSPACE.md").read_text().split())
  assert " < ".join(ORDER) in text

