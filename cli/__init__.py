"""The `sutradhar` command line."""
