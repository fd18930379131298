"""SWE-bench-style evaluation: apply patches, run FAIL_TO_PASS / PASS_TO_PASS tests, grade, report.

from swesrl.harness import grade_patch, evaluate
report = grade_patch(instance, patch, SandboxConfig(backend="local"), mirror="tasks/repos")
report["resolved"]  # the RLVR reward
"""

from swesrl.harness.grading import Status
from swesrl.harness.run import evaluate, grade_patch, load_predictions, validate_dataset

__all__ = ["Status", "evaluate", "grade_patch", "load_predictions", "validate_dataset"]
