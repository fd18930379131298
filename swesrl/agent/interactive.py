"""`swesrl step`: a person steps an agent through one task, with rich panels.

Model, task and sandbox text is shown verbatim (`rich.text.Text`, never markup): `[...]` in code or
output is content, not style.

Modes: `auto` (the model acts, one step per Enter), `confirm` (each proposed reply can be accepted,
edited in $VISUAL/$EDITOR, or replaced), `human` (the person types every action). The episode is
the same `Agent` as `swesrl run` (same templates, limits and trajectory format), so a stepped
episode saved with `--save` is a trajectory like any expert's.

Typed input: a plain line is a bash command; a line starting with `<` starts an XML reply (optional
`<think>...</think>`, then one call) that ends at `</function>`; an empty line starts a multi-line
block ended by a line holding only `.`. Commands: `:submit`, `:quit`, `:help`.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax
from rich.text import Text

from swesrl.agent.loop import Agent, AgentConfig
from swesrl.core.actions import FormatError, format_action, parse_action
from swesrl.envs import env_for_instance

HELP = (
    "Type a bash command, or an XML reply starting with '<' (ends at </function>).\n"
    "Press Enter on an empty line to start a multi-line block; end it with a line holding only '.'.\n"
    "Commands: :submit (end with the current diff), :quit (stop without submitting), :help."
)
SUBMIT = format_action("submit")


def as_reply(text: str) -> str:
    """Typed text as an assistant reply: XML as it is, anything else as a bash call."""
    if "<function=" in text:
        return text.strip()
    return format_action("bash", {"command": text})


class Stepper:
    def __init__(self, agent: Agent, mode: str, console: Console | None = None):
        self.agent, self.mode = agent, mode
        self.console = console or Console(highlight=False)
        self.edited: list[int] = []

    def ask(self, prompt: str) -> str | None:
        try:
            return self.console.input(prompt)
        except EOFError:
            return None

    def read_input(self) -> str | None:
        """One typed reply, a `:command`, or None at end of input."""
        first = self.ask("[bold cyan]action>[/] ")
        if first is None:
            return None
        lines, block = [first], not first.strip()
        if not block and (first.strip().startswith(":") or not first.lstrip().startswith("<")):
            return first.strip()
        if block:
            lines = []
        while not (lines and "</function>" in lines[-1] and not block):
            line = self.ask("[dim]...[/] ")
            if line is None or line.strip() == ".":
                break
            lines.append(line)
        return "\n".join(lines)

    def human_reply(self) -> str | None:
        while True:
            text = self.read_input()
            if text is None or text == ":quit":
                return None
            if text == ":help":
                self.console.print(HELP)
                continue
            if text == ":submit":
                return SUBMIT
            if text.strip():
                return as_reply(text)

    def show_reply(self, reply: str, title: str) -> None:
        try:
            thought, action = parse_action(reply)
        except FormatError as e:
            self.console.print(
                Panel(Text(reply), title=Text(f"{title} (malformed: {e})"), border_style="red")
            )
            return
        if thought:
            self.console.print(Panel(Text(thought), title="thought", border_style="magenta"))
        self.console.print(Panel(Syntax(action.raw, "xml", word_wrap=True), title=title, border_style="blue"))

    def confirm(self, reply: str) -> str | None:
        while True:
            choice = self.ask("[bold]\\[a]ccept, \\[e]dit, \\[r]eplace, \\[q]uit?[/] ")
            if choice is None:
                return None
            choice = choice.strip().lower() or "a"
            if choice in ("a", "accept", "y"):
                return reply
            if choice in ("q", "quit", ":quit"):
                return None
            if choice in ("e", "edit"):
                edited = self.edit(reply)
                if edited is not None:
                    self.edited.append(self.agent.n_steps)
                    self.show_reply(edited, "edited action")
                    return edited
            if choice in ("r", "replace"):
                new = self.human_reply()
                if new is not None:
                    self.edited.append(self.agent.n_steps)
                return new

    def edit(self, reply: str) -> str | None:
        if not (os.environ.get("VISUAL") or os.environ.get("EDITOR")):
            self.console.print("No $VISUAL or $EDITOR set: type the replacement instead.", markup=False)
            return self.human_reply()
        import click

        text = click.edit(reply, extension=".xml", require_save=False)
        return text.strip() if text is not None else reply

    def next_reply(self) -> str | None:
        agent = self.agent
        if self.mode == "human":
            reply = self.human_reply()
            agent.n_steps += reply is not None
            return reply
        if self.mode == "auto" and self.ask("[dim]Enter: next step, q: quit[/] ") in (None, "q", ":quit"):
            return None
        reply = agent.guarded(agent.query)
        if reply is None:
            return None
        self.show_reply(reply, "proposed action" if self.mode == "confirm" else "action")
        return self.confirm(reply) if self.mode == "confirm" else reply

    def run(self) -> dict:
        agent = self.agent
        self.console.print(
            Panel(Text(agent.messages[1]["content"]), title=Text(f"task {agent.instance['instance_id']}"))
        )
        if self.mode == "human":
            self.console.print(HELP, markup=False)
        while agent.info["exit_status"] is None:
            reply = self.next_reply()
            if agent.info["exit_status"] is not None:
                break
            if reply is None:
                agent.finish("stopped", agent.env.diff())
                agent.save()
                break
            n = len(agent.messages)
            agent.guarded(agent.act, reply)
            if len(agent.messages) > n + 1 and agent.info["exit_status"] is None:
                style = "red" if agent.consecutive_format_errors else "green"
                self.console.print(
                    Panel(Text(agent.messages[-1]["content"]), title="observation", border_style=style)
                )
        info = agent.info
        info["human_edits"] = self.edited
        agent.save()
        patch = info.get("submission") or "(empty)"
        self.console.print(
            Panel(Syntax(patch, "diff", word_wrap=True), title=Text(f"exit status: {info['exit_status']}"))
        )
        if info.get("traceback"):
            self.console.print(info["traceback"], markup=False)
        return agent.trajectory()


def step_episode(
    instance: dict,
    model: Any,
    config: AgentConfig,
    mode: str = "confirm",
    save: str | Path | None = None,
    mirror: str | Path | None = None,
    console: Console | None = None,
) -> dict:

    model = model or SimpleNamespace(name="human")
    with env_for_instance(instance, config.sandbox, mirror=mirror) as env:
        agent = Agent(instance, model, env, config, traj_path=save)
        return Stepper(agent, mode, console).run()
