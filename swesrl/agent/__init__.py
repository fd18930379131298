"""The agent: action format, think-then-act loop, model backends, batch runs, interactive stepping."""
