"""`swesrl run` (batch agent runs) and `swesrl step` (interactive stepping)."""

COMMANDS: dict = {}
