"""Training: trajectory readers, step instances, rewards, SFT, SRL (GRPO), RLVR, export."""
