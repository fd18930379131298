"""str_replace_editor with SWE-agent's semantics and messages, run by python3 *inside* the sandbox.

Standalone (standard library only, Python 3.6+; no capture_output) so it runs in any task image. Called as
`python3 str_replace_editor.py <base64 of a JSON object of string parameters>` (or `-` to read
it from stdin); the undo history
lives in a JSON file beside this script, outside the repository and its diff.
"""

import base64
import json
import os
import subprocess
import sys

SNIPPET_LINES = 4
MAX_RESPONSE_LEN = 16000
TRUNCATED_MESSAGE = (
    "<response clipped><NOTE>To save on context only part of this file has been shown to you. "
    "You should retry this tool after you have searched inside the file with `grep -n` in order to "
    "find the line numbers of what you are looking for.</NOTE>"
)
HISTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "history.json")
COMMANDS = ("view", "create", "str_replace", "insert", "undo_edit")


class Fail(Exception):
    def __init__(self, message, code):
        Exception.__init__(self, message)
        self.code = code


def _load_history():
    try:
        with open(HISTORY, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _save_history(history):
    tmp = HISTORY + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(history, f)
    os.replace(tmp, HISTORY)


def _push(path, content):
    history = _load_history()
    history.setdefault(path, []).append(content)
    _save_history(history)


def _pop(path):
    history = _load_history()
    if not history.get(path):
        return None
    content = history[path].pop()
    _save_history(history)
    return content


_encoding = {"name": "utf-8"}


def read_file(path):
    last = None
    for enc, errors in ((None, "strict"), ("utf-8", "strict"), ("latin-1", "strict"), ("utf-8", "replace")):
        try:
            with open(path, encoding=enc, errors=errors, newline="") as f:
                text = f.read()
        except UnicodeDecodeError as e:
            last = e
            continue
        except OSError as e:
            raise Fail(f"Ran into {e} while trying to read {path}", 19) from None
        _encoding["name"] = enc or "utf-8"
        return text
    raise Fail(f"Ran into UnicodeDecodeError {last} while trying to read {path}", 19)


def write_file(path, text):
    try:
        with open(path, "w", encoding=_encoding["name"], newline="") as f:
            f.write(text)
    except Exception as e:
        raise Fail(f"Ran into {e} while trying to write to {path}", 20) from None


def maybe_truncate(content):
    if len(content) <= MAX_RESPONSE_LEN:
        return content
    return content[:MAX_RESPONSE_LEN] + TRUNCATED_MESSAGE


def make_output(content, descriptor, init_line=1):
    content = maybe_truncate(content).expandtabs()
    numbered = "\n".join(f"{i + init_line:6}\t{line}" for i, line in enumerate(content.split("\n")))
    return f"Here's the result of running `cat -n` on {descriptor}:\n" + numbered + "\n"


def validate_path(command, path):
    if not os.path.isabs(path):
        suggested = os.path.join(os.getcwd(), path)
        raise Fail(
            f"The path {path} is not an absolute path, it should start with `/`. Maybe you meant {suggested}?",
            6,
        )
    exists = os.path.exists(path)
    if not exists and command != "create":
        raise Fail(f"The path {path} does not exist. Please provide a valid path.", 7)
    if exists and command == "create":
        raise Fail(f"File already exists at: {path}. Cannot overwrite files using command `create`.", 8)
    if os.path.isdir(path) and command != "view":
        raise Fail(
            f"The path {path} is a directory and only the `view` command can be used on directories",
            9,
        )


def _int(value, name):
    try:
        return int(str(value).strip())
    except ValueError:
        raise Fail(f"Invalid `{name}` parameter: {value}. It should be an integer.", 22) from None


def _view_range(value):
    if isinstance(value, list):
        items = value
    else:
        text = str(value).strip()
        try:
            items = json.loads(text)
        except ValueError:
            items = text.strip("[]()").replace(",", " ").split()
    try:
        items = [int(str(i).strip()) for i in items]
    except ValueError:
        items = []
    if len(items) != 2:
        raise Fail("Invalid `view_range`. It should be a list of two integers.", 11)
    return items


def view(path, view_range):
    if os.path.isdir(path):
        if view_range:
            raise Fail("The `view_range` parameter is not allowed when `path` points to a directory.", 10)
        out = subprocess.run(  # noqa: UP022 (capture_output needs Python 3.7)
            ["find", path, "-maxdepth", "2", "-not", "-path", "*/.*"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if out.stderr:
            return ""
        listing = "\n".join(sorted(out.stdout.decode("utf-8", "replace").splitlines()))
        return f"Here's the files and directories up to 2 levels deep in {path}, excluding hidden items:\n{listing}\n\n"
    content = read_file(path)
    init_line = 1
    if view_range:
        lo, hi = _view_range(view_range)
        lines = content.split("\n")
        n = len(lines)
        if lo < 1 or lo > n:
            raise Fail(
                f"Invalid `view_range`: {[lo, hi]}. Its first element `{lo}` should be within the range of lines of the file: {[1, n]}",
                12,
            )
        if hi > n:
            raise Fail(
                f"Invalid `view_range`: {[lo, hi]}. Its second element `{hi}` should be smaller than the number of lines in the file: `{n}`",
                13,
            )
        if hi != -1 and hi < lo:
            raise Fail(
                f"Invalid `view_range`: {[lo, hi]}. Its second element `{hi}` should be larger or equal than its first `{lo}`",
                14,
            )
        if hi == -1:
            hi = n
        content = "\n".join(lines[lo - 1 : hi])
        init_line = lo
    return make_output(content, path, init_line)


def create(path, file_text):
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise Fail(f"The parent directory {parent} does not exist. Please create it first.", 21)
    write_file(path, file_text)
    _push(path, file_text)
    return f"File created successfully at: {path}\n"


def str_replace(path, old_str, new_str):
    content = read_file(path).expandtabs()
    old_str = old_str.expandtabs()
    new_str = new_str.expandtabs() if new_str is not None else ""
    count = content.count(old_str)
    if count == 0:
        raise Fail(
            f"No replacement was performed, old_str `{old_str}` did not appear verbatim in {path}.", 15
        )
    if count > 1:
        lines = [i + 1 for i, line in enumerate(content.split("\n")) if old_str in line]
        raise Fail(
            f"No replacement was performed. Multiple occurrences of old_str `{old_str}` in lines {lines}. Please ensure it is unique",
            16,
        )
    if new_str == old_str:
        raise Fail(
            f"No replacement was performed, old_str `{old_str}` is the same as new_str `{new_str}`.", 161
        )
    new_content = content.replace(old_str, new_str)
    write_file(path, new_content)
    _push(path, content)
    line = content.split(old_str)[0].count("\n")
    start = max(1, line - SNIPPET_LINES)
    end = min(line + SNIPPET_LINES + new_str.count("\n"), len(new_content.splitlines()))
    snippet = "\n".join(new_content.split("\n")[start - 1 : end])
    return (
        f"The file {path} has been edited. "
        + make_output(snippet, f"a snippet of {path}", start)
        + "Review the changes and make sure they are as expected. Edit the file again if necessary.\n"
    )


def insert(path, insert_line, new_str):
    text = read_file(path).expandtabs()
    new_str = new_str.expandtabs()
    lines = text.split("\n")
    n = len(lines)
    if insert_line < 0 or insert_line > n:
        raise Fail(
            f"Invalid `insert_line` parameter: {insert_line}. It should be within the range of lines of the file: {[0, n]}",
            17,
        )
    new_lines = new_str.split("\n")
    new_text = "\n".join(lines[:insert_line] + new_lines + lines[insert_line:])
    snippet = "\n".join(
        lines[max(0, insert_line - SNIPPET_LINES) : insert_line]
        + new_lines
        + lines[insert_line : insert_line + SNIPPET_LINES]
    )
    write_file(path, new_text)
    _push(path, text)
    return (
        f"The file {path} has been edited. "
        + make_output(snippet, "a snippet of the edited file", max(1, insert_line - SNIPPET_LINES + 1))
        + "Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary.\n"
    )


def undo_edit(path):
    old = _pop(path)
    if old is None:
        raise Fail(f"No edit history found for {path}.", 18)
    write_file(path, old)
    return f"Last edit to {path} undone successfully. {make_output(old, path)}"


def run(params):
    command = params.get("command")
    path = params.get("path")
    if command not in COMMANDS:
        raise Fail(
            f'Unrecognized command {command}. The allowed commands for the str_replace_editor tool are: "view", "create", "str_replace", "insert", "undo_edit"',
            5,
        )
    if not path:
        raise Fail(f"Parameter `path` is required for command: {command}", 23)
    validate_path(command, path)
    if command == "view":
        return view(path, params.get("view_range"))
    if command == "create":
        if params.get("file_text") is None:
            raise Fail("Parameter `file_text` is required for command: create", 1)
        return create(path, params["file_text"])
    if command == "str_replace":
        if params.get("old_str") is None:
            raise Fail("Parameter `old_str` is required for command: str_replace", 2)
        return str_replace(path, params["old_str"], params.get("new_str"))
    if command == "insert":
        if params.get("insert_line") is None:
            raise Fail("Parameter `insert_line` is required for command: insert", 3)
        if params.get("new_str") is None:
            raise Fail("Parameter `new_str` is required for command: insert", 4)
        return insert(path, _int(params["insert_line"], "insert_line"), params["new_str"])
    return undo_edit(path)


def respond(params):
    """(observation text, exit status) for one call; the command runner calls this in a fork."""
    try:
        return run(params), 0
    except Fail as e:
        return str(e) + "\n", e.code


def main():
    payload = sys.stdin.read() if sys.argv[1] == "-" else sys.argv[1]
    params = json.loads(base64.b64decode("".join(payload.split())).decode("utf-8"))
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout
    text, code = respond(params)
    out.write(text.encode("utf-8", "replace"))
    out.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
