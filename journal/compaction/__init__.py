"""Compaction: the documented files and the archives, built from the log."""
