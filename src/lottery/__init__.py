"""lottery: find, verify and study lottery tickets in neural networks."""

__version__ = "0.1.0"
