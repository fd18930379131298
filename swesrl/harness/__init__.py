"""SWE-bench-style evaluation: apply patches, run FAIL_TO_PASS / PASS_TO_PASS tests, grade, report.

from swesrl.harness import grade_patch, evaluate
report = grade_patch(instance, patch, SandboxConfig(backend="local"), mirror="tasks/repos")
report["resolved"]  # the RLVR reward
"""

from swesrl.harness.evaluation import evaluate, validate_dataset
from swesrl.harness.grading import Status
from swesrl.harness.instance import grade_patch
from swesrl.harness.predictions import load_predictions

__all__ = ["Status", "evaluate", "grade_patch", "load_predictions", "validate_dataset"]
