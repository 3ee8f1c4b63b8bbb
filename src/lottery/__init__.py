"""lottery: find, verify and study lottery tickets in neural networks."""

from lottery.version import __version__

__all__ = ["__version__", "find_ticket"]


def __getattr__(name):
    # `lottery.find_ticket` without importing torch and pandas for every `lottery --help`
    if name == "find_ticket":
        from lottery.api import find_ticket

        return find_ticket
    raise AttributeError(f"module 'lottery' has no attribute {name!r}")
