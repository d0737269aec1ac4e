"""The `Options` of a store, checked: what `Journal(...)` was given, refused when out of range.

Strategy: one function, so the facade's constructor only hands its arguments over.
"""

from __future__ import annotations

from .session import Options


def checked_options(
    durability: str,
    modes: tuple[str, ...],
    sizes: dict[str, int],
    lock_timeout: float,
    file_mode: int,
    dir_mode: int,
    read_only: bool,
) -> Options:
    """`Options` from the facade's arguments; `sizes` holds segment_bytes, max_record_bytes,
    max_open_sessions, max_cached_messages (each > 0) and preallocate (>= 0).

    Raises:
        ValueError: an argument out of range, named.
    """
    if durability not in modes:
        raise ValueError(f"durability must be one of {modes}, not {durability!r}")
    for name, value in sizes.items():
        if value < (0 if name == "preallocate" else 1):
            raise ValueError(
                f"{name} must be {'>= 0' if name == 'preallocate' else 'positive'}, not {value!r}"
            )
    if not isinstance(lock_timeout, (int, float)) or not 0 <= lock_timeout < float("inf"):
        raise ValueError(f"lock_timeout must be a finite number of seconds >= 0, not {lock_timeout!r}")
    return Options(
        durability,
        sizes["segment_bytes"],
        sizes["max_record_bytes"],
        lock_timeout,
        file_mode,
        dir_mode,
        read_only,
        sizes["preallocate"],
    )
