"""sag-harness: benchmark and reproduction harness for weakly supervised referring image segmentation."""

__version__ = "0.1.0"
