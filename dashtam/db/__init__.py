"""Database plumbing every app shares: the mechanism for hand-written SQL (``statements``)."""
