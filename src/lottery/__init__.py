"""lottery: find, verify and study lottery tickets in neural networks."""

from lottery.version import __version__

__all__ = ["Ticket", "__version__", "bake", "find_ticket", "load_ticket", "sparse"]


def __getattr__(name):
    # `lottery.find_ticket` without importing torch and pandas for every `lottery --help`
    if name in ("find_ticket", "Ticket", "bake"):
        from lottery import api

        return getattr(api, name)
    if name in ("load_ticket", "sparse"):
        import lottery.sparse

        return lottery.sparse if name == "sparse" else lottery.sparse.load_ticket
    raise AttributeError(f"module 'lottery' has no attribute {name!r}")
