"""The drop-in `DefaultSessionStore` over a `Journal`."""
