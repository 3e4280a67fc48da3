"""Stand-in model: see standin/trtllm.py."""

import os
import sys

# The Python-backend stub runs an isolated interpreter that ignores PYTHONPATH; honour it.
sys.path[:0] = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]

from standin.trtllm import Bls as TritonPythonModel

__all__ = ["TritonPythonModel"]
