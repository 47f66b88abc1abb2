"""Errors a user can cause. The CLI prints one line and exits 2 for every HarnessError.

Each error names the thing (file, field, id) and what was expected, so the line alone tells the
user what to fix. Internal failures (bugs) are any other exception and exit 1.
"""


class HarnessError(Exception):
    """A mistake in the user's input: a path, a flag value, a name or a file's content."""


class ConfigError(HarnessError):
    """A config key or `--set` value that is unknown or out of range."""


class DataError(HarnessError):
    """A dataset root, annotation file, image or prediction that is missing or malformed."""

    def __init__(self, path, problem: str):
        self.path = path
        super().__init__(f"{path}: {problem}")


class UnknownNameError(HarnessError):
    """An unknown method, dataset, split, table or profile name."""

    def __init__(self, kind: str, name: str, known):
        self.kind, self.name = kind, name
        super().__init__(f"unknown {kind} {name!r}; expected one of: {', '.join(sorted(known))}")


class CheckpointError(HarnessError):
    """A checkpoint path that does not exist or holds the wrong architecture."""


class TrainingDivergedError(HarnessError):
    """A NaN/inf loss: names the method, seed, step and the last finite loss."""


class MethodImportError(HarnessError):
    """Method modules that failed to import: each with the route that named it and its error,
    and the methods that did load (one bad plugin hides no other name)."""

    def __init__(self, failures, loaded):
        self.failures, self.loaded = list(failures), list(loaded)
        lines = "; ".join(f.line() for f in self.failures)
        super().__init__(f"{len(self.failures)} method module(s) failed to import: {lines}; "
                         f"methods that loaded: {', '.join(sorted(self.loaded)) or '(none)'}")
