"""Sandboxes: the Environment protocol and its backends (local bubblewrap, Docker)."""
