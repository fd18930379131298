"""YAML configs, one per use case, validated by pydantic models.

`load_config(Model, ["base.yaml", "train.lr=1e-6"])` merges YAML files (paths, or names of the
files bundled in this folder) left to right, then applies dotted `key=value` overrides (values
parsed as YAML), then validates. Unknown keys and wrong types raise UserError with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from swesrl.utils import UserError

CONFIG_DIR = Path(__file__).parent
M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


def find_config(name: str | Path) -> Path:
    p = Path(name)
    if p.is_file():
        return p
    bundled = CONFIG_DIR / p.name
    if bundled.is_file():
        return bundled
    raise UserError(f"config file not found: {name} (bundled: {', '.join(bundled_configs())})")


def bundled_configs() -> list[str]:
    return sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = find_config(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: the top level must be a mapping")
    return data


def deep_merge(base: dict, other: dict) -> dict:
    out = dict(base)
    for k, v in other.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def apply_override(data: dict, override: str) -> dict:
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise UserError(f"override must look like key.sub=value, got: {override!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not YAML: take the text as it is (a string field validates it)
    node: dict = {}
    cur = node
    parts = key.strip().split(".")
    for part in parts[:-1]:
        cur[part] = {}
        cur = cur[part]
    cur[parts[-1]] = value
    return deep_merge(data, node)


def load_config(model: type[M], sources: list[str | Path] | None = None, base: dict | None = None) -> M:
    data: dict = dict(base or {})
    for src in sources or []:
        s = str(src)
        if "=" in s and not Path(s).exists():
            data = apply_override(data, s)
        else:
            data = deep_merge(data, read_yaml(s))
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise UserError(f"config error at {loc}: {err['msg']}{more}") from None
