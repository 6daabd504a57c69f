"""The one exception tree: every expected failure is a :class:`ProdsearchError` whose
message is one readable line saying what happened and what to do. The CLI maps the tree
once (``cli/__init__.py``: one line, exit 1), and so does the API (``api/app.py``: 422,
404 or 503 with a message of ours, never a library's exception text)."""


class ProdsearchError(Exception):
    """An expected failure: the message says what happened and what to do."""


class DatabaseUnavailable(ProdsearchError):
    """The configured PostgreSQL server cannot be reached or lacks what we need."""


class ConfigError(ProdsearchError):
    """A setting or a source-table mapping is wrong."""


class InputError(ProdsearchError):
    """Input the caller got wrong (a query, a filter, a row): the message names what is
    allowed."""


class SearchError(InputError):
    """Bad search input (HTTP 422) or a missing product (``not_found`` → HTTP 404)."""

    def __init__(self, message: str, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


class FilterError(InputError):
    """A filter the caller got wrong; the message names what is allowed."""


class RowError(InputError):
    """A row that cannot be stored; the message is the reason written to the rejects file."""
