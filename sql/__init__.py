"""The database: connection settings, the embedded server, migrations and every query the service runs."""
