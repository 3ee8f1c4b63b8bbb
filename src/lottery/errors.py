"""What a user can get wrong, as exceptions: the ground floor, importing nothing of ours.

The CLI turns any `LotteryError` into one line on stderr and exit code 2; the Python API raises
it as it is. Each message says what was wrong and what is allowed.
"""


class LotteryError(Exception):
    """A problem the user can fix (a setting, a file, a store); never a bug of ours."""


class ConfigError(LotteryError, ValueError):
    """A configuration value, a name or an option that is not allowed."""


class DataError(LotteryError, RuntimeError):
    """Data that cannot be found or does not verify; the message says where we looked."""


class StoreError(LotteryError, RuntimeError):
    """The store cannot be used (unwritable, locked, or holds a different experiment)."""


class ExecutorError(LotteryError, RuntimeError):
    """An executor lost work for good (a cluster that went away): what is done is kept."""


class UsageError(LotteryError):
    """A command-line flag or argument that is not allowed."""


class LotteryWarning(UserWarning):
    """Something the tool works around or the user may want to know; the numbers stay right."""


class StoreWarning(LotteryWarning):
    """A stored file was damaged or left behind: set aside and recomputed, or cleaned up."""


class EngineWarning(LotteryWarning):
    """The engine took a slower road than asked (a step left uncompiled, a model trained one
    replicate at a time), and says why; the numbers are unaffected."""


class DivergenceWarning(LotteryWarning):
    """Some trainings diverged (a loss that stopped being finite): recorded, and never a ticket."""


class DataWarning(LotteryWarning):
    """Data that loads but is not quite what its source publishes (and the warning says how)."""


class InitWarning(LotteryWarning):
    """find_ticket re-draws a module's weights in a way the user may not expect, and says how."""
