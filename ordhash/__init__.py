"""ordhash."""
