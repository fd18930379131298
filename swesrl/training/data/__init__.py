"""SRL data: read expert trajectories in any supported format, cut them into step-wise instances.

- `readers`: format detection and normalised trajectories (`iter_trajectories`, `read_trajectories`).
- `steps`: prompts built by the agent's own code (`agent_messages`, `build_step_instances`, `sft_conversation`).
- `build`: the streaming `swesrl data build` (`build_dataset`).
- `verify`: `swesrl data verify` (replay expert actions in a sandbox and grade the patch).
"""

from swesrl.core.trajectories import (
    Dropped,
    Step,
    Trajectory,
    detect_format,
    iter_trajectories,
    normalise,
    read_trajectories,
)
from swesrl.training.data.build import BuildOptions, build_dataset
from swesrl.training.data.steps import agent_messages, assistant_turn, build_step_instances, sft_conversation

__all__ = [
    "BuildOptions",
    "Dropped",
    "Step",
    "Trajectory",
    "agent_messages",
    "assistant_turn",
    "build_dataset",
    "build_step_instances",
    "detect_format",
    "iter_trajectories",
    "normalise",
    "read_trajectories",
    "sft_conversation",
]
