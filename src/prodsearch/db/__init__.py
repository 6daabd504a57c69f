"""Database access: embedded server lifecycle, connections, schema migrations."""

from prodsearch.db.connect import connect, database_url
from prodsearch.db.migrate import migrate

__all__ = ["connect", "database_url", "migrate"]
