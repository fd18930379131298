"""The bottom layer: data types every other layer shares, and nothing else.

- `instances`: the SWE-bench instance schema and its one loader (JSON, JSONL, parquet).
- `actions`: the action format (think, then one SWE-agent XML call): parse and format.
- `trajectories`: expert trajectory formats (SWE-smith, SWE-agent, mini-swe-agent, OpenAI tool
  calls, ours) read into one normalised form.

Layers, bottom up (import-linter checks it in CI): core <- envs <- agent <- harness <- tasks <-
training <- demo <- cli. Imports point down only.
"""
