"""`swesrl eval` and `swesrl oracle`."""

COMMANDS: dict = {}
