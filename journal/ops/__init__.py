"""Whole-store operations on top of the log and the compactor: export and import of archives,
search, analytics and retention (the docs' recipes, done in one streaming pass each).

Strategy: this floor sits beside `adoption/`, below the `Journal` facade: it reads and writes
through the small `protocol.Store` surface the facade offers, and `facade.Operations` is the
mixin that puts each operation on `Journal` as a method.
"""
