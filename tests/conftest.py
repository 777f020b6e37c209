import sys
from pathlib import Path

# test helpers (tests/helpers.py) importable as `helpers` from every test directory
sys.path.insert(0, str(Path(__file__).resolve().parent))
