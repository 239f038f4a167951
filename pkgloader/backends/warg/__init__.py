"""warg backend (work in progress)."""
