"""``python -m lib.nn.kernels``: builds the fused kernels and says where they are."""
import sys

from lib.nn.kernels import build


def main() -> None:
  why = build.unsupported()
  if why:
    sys.exit(f"lib.nn.kernels: cannot run here: needs {why}")
  print(f"lib.nn.kernels: built and registered {build._library_path()}")


if __name__ == "__main__":
  main()
