from __future__ import annotations

import pytest

from swesrl.config import StrictModel, bundled_configs, load_config
from swesrl.utils import UserError


class Train(StrictModel):
    lr: float = 1e-3
    """Learning rate."""
    steps: int = 10
    """Optimizer steps."""


class Cfg(StrictModel):
    name: str = "x"
    """A name."""
    train: Train = Train()
    """Training section."""


def test_yaml_files_merge_left_to_right_then_overrides(tmp_path):
    a = tmp_path / "a.yaml"
    a.write_text("name: first\ntrain:\n  lr: 0.5\n  steps: 3\n")
    b = tmp_path / "b.yaml"
    b.write_text("train:\n  steps: 7\n")
    cfg = load_config(Cfg, [a, b, "train.lr=1e-6", "name=hello"])
    assert cfg.name == "hello" and cfg.train.lr == 1e-6 and cfg.train.steps == 7


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("train.foo=1", "config error at train.foo: Extra inputs are not permitted"),
        ("train.steps=many", "config error at train.steps"),
        ("train.steps=a: b: c", "config error at train.steps"),
        ("=3", "override must look like key.sub=value"),
        ("missing.yaml", "config file not found: missing.yaml"),
    ],
)
def test_bad_config_is_one_clear_line(source, message):
    with pytest.raises(UserError) as e:
        load_config(Cfg, [source])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_yaml_and_non_mapping(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(Cfg, [bad])
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="top level must be a mapping"):
        load_config(Cfg, [lst])


def test_bundled_configs_are_found_by_name():
    names = bundled_configs()
    assert "agent.yaml" in names and "srl_qwen7b.yaml" in names
