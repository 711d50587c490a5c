"""Models of the recall app."""
