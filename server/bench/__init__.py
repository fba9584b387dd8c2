"""./run.sh bench: measured side by side in one run, printed as one table."""
