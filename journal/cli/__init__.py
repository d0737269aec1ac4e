"""The `journal` command line."""
