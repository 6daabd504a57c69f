"""Errors that reach the user as one readable line (no traceback unless --debug)."""


class ProdsearchError(Exception):
    """An expected failure: the message says what happened and what to do."""


class DatabaseUnavailable(ProdsearchError):
    """The configured PostgreSQL server cannot be reached or lacks what we need."""


class ConfigError(ProdsearchError):
    """A setting or a source-table mapping is wrong."""
