"""ContinuableJob's SDK: long batch jobs split into steps that resume where they stopped."""

__version__ = "0.1.0"

__all__ = ["__version__"]
