"""Task instances (SWE-bench schema), the bundled offline task suite and its scripted expert."""
