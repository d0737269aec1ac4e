"""Replication of sessions to object storage (a bucket, or a directory standing in for one):
shipping what the local journal made durable, restoring it anywhere, one writer per session.

Strategy: the local, fsynced journal stays the source of truth and the fast path; the bucket
holds immutable, checksummed objects named so they sort, written create-only.
"""
