"""`make bench`: the production stack under load, side by side with a bare DRF view."""
