"""A service that streams huge customer CSV files into PostgreSQL with live progress."""
