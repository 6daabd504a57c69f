"""Database access: embedded server lifecycle, connections, schema migrations."""

from prodsearch.db.connect import connect, database_url, start_database
from prodsearch.db.migrate import migrate

__all__ = ["connect", "database_url", "migrate", "start_database"]
