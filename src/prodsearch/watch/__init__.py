"""Continuous sync: change capture in PostgreSQL and the ``prodsearch watch`` worker."""
