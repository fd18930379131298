"""Task instances (SWE-bench schema), the bundled offline task suite and its scripted expert."""

from swesrl.tasks.generate import MAX_N, build_suite

__all__ = ["MAX_N", "build_suite"]
