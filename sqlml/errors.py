"""User-facing errors. Anything else escaping sqlml is a bug, and is reported as one."""


class SqlmlError(Exception):
    """Base class of every error caused by the user's SQL, options, data or environment."""

    def _render_traceback_(self) -> list[str]:
        """IPython and Jupyter show what this returns instead of a traceback: the message says what to do."""
        return [f"{type(self).__name__}: {self}"]


class SqlmlParseError(SqlmlError):
    """The SQL text could not be parsed; the message carries line and column."""


class OptionError(SqlmlError):
    """An OPTIONS entry is unknown, does not apply, or has the wrong type or range."""


class ParameterError(SqlmlError):
    """A STRUCT(...) parameter of an ML.* function is unknown, or has the wrong type or range."""


class ModelNotFoundError(SqlmlError):
    """The named model (or version) is not in the registry."""


class ModelExpiredError(ModelNotFoundError):
    """A model past its expiration_timestamp (ALTER MODEL … SET OPTIONS): BigQuery would have deleted it."""


class DataError(SqlmlError):
    """The training or prediction data cannot be used as it is (missing column, NaN, one class...)."""


class ModelIntegrityError(SqlmlError):
    """Model bytes failed verification: tampered, foreign, or of an unknown format."""


class DatabaseBusyError(SqlmlError):
    """Another process holds the database file's write lock."""


class SecretKeyError(SqlmlError):
    """The secret key that signs models is missing, unreadable or too weak."""


class StorageError(SqlmlError):
    """The database cannot be written: the disk is full, or the file or its directory is not writable."""


class UnsupportedError(SqlmlError):
    """The engine cannot do this (yet); the message says what to do instead."""
