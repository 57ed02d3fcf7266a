"""Short runnable scripts to copy from (run with ``python -m examples.<name>``)."""
