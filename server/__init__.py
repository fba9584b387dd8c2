"""A service that streams huge customer CSV files into PostgreSQL with live progress."""

# The project's one version: setup.py reads it, `csv-import --version` prints it.
__version__ = "0.1.0"
