"""sag-harness: benchmark and reproduction harness for weakly supervised referring image segmentation."""

# Choose the CPU kernels before anything imports torch (harness/numerics.py says why).
from harness.errors import ConfigError as _ConfigError
from harness.numerics import apply_kernels as _apply_kernels

try:
    _apply_kernels()
except _ConfigError:   # a bad SAG_HARNESS_KERNELS: reported as a one-line error by the command
    pass

__version__ = "0.1.0"
