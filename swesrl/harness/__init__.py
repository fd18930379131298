"""SWE-bench-style evaluation: apply patches, run FAIL_TO_PASS / PASS_TO_PASS tests, grade, report."""
