"""The version of this package (the ground floor: anything may ask it)."""

__version__ = "0.1.0"
