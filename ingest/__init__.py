"""Ingest: parse listing inputs, normalize them and store them in PostgreSQL."""
