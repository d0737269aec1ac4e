"""The log engine: one session's files, appended and read (FORMAT.md)."""
