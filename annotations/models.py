"""Reviewer annotations, tags, corrections, feedback items and triage clusters (see the open issues)."""
