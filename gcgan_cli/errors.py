"""Exceptions a user can cause; the CLI prints them as one line and exits 2.

A leaf module: every layer may import it, it imports nothing of gcgan.
"""


class GcganError(Exception):
    """A problem the user can fix (bad option, missing file, wrong format)."""

    exit_code = 2


class UsageError(GcganError):
    """An option or argument has a value gcgan cannot use."""


class DatasetError(GcganError):
    """A dataset, image folder or label file is missing or malformed."""


class CheckpointError(GcganError):
    """A checkpoint is missing, truncated, foreign, unsafe or of another format version."""


class DiskFullError(GcganError):
    """The disk filled up while writing; what was finished is whole and a re-run continues."""


class WorkerDied(GcganError):
    """A worker process ended without a result (killed, e.g. by the out-of-memory killer)."""


class TrainingDiverged(GcganError):
    """A loss became NaN or infinite; the run stopped and kept its last good checkpoint."""

    exit_code = 3
