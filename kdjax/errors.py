"""Errors a user causes and can fix (a config, a workdir, a file), as opposed to bugs.

Entry points (`experiments.main`, `experiments.sweep`, ...) print a `UserError` as one line naming the bad value and
exit non-zero (`exit_message`); anything else keeps its traceback, because it is a bug. Each class also derives from
the builtin a caller would catch without knowing kdjax (`ValueError`, `RuntimeError`, `FileNotFoundError`).
"""


class UserError(Exception):
    """An error the user fixes by changing an input; printed without a traceback."""
    label = "Error"


class ConfigError(UserError, ValueError):
    """A config names an unknown or invalid value (key, model, term, dataset, option, size)."""
    label = "Config error"


class ResumeError(UserError, RuntimeError):
    """A relaunch was refused: the workdir holds a run of another trajectory (config, teacher weights, steps)."""
    label = "Resume refused"


class MissingCheckpointError(UserError, FileNotFoundError):
    """A checkpoint or file the config points at (a teacher, `init_from`) does not exist."""
    label = "Missing file"


class BadFileError(UserError, ValueError):
    """A file the config points at is corrupt, or not what the config says it is (a hash, a shape)."""
    label = "Bad file"


def exit_message(error: UserError) -> str:
    """The one line an entry point prints before exiting non-zero."""
    return f"{error.label}: {error}"
