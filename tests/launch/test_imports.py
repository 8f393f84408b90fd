"""``launch``'s modules import each other one way: no import cycle among them."""
import ast
import pathlib

import launch

def test_launch_modules_form_no_import_cycle():
  """``launch``'s modules import each other one way (function-level imports too)."""
  launch_dir = pathlib.Path(launch.__file__).parent
  graph = {}
  for path in launch_dir.glob("*.py"):
    mods = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.ImportFrom) and node.module == "launch":
        mods |= {a.name for a in node.names}
      elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("launch."):
        mods.add(node.module.split(".")[1])
    graph[path.stem] = mods - {path.stem}

  def reaches(a, b, seen=()):
    return any(n == b or (n not in seen and reaches(n, b, (*seen, n))) for n in graph.get(a, ()))
  cycles = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if reaches(b, a))
  assert cycles == []
