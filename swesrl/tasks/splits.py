"""Which bundled tasks a run trains and evaluates on: the suite's train split, and held-out tasks in
two groups (an unseen repository with a bug family seen in training, or an unseen bug family)."""

from __future__ import annotations

import random

from swesrl.tasks.catalog import TEST_FAMILIES

GROUPS = ("heldout_repo", "heldout_family")


def group_of(instance: dict) -> str:
    """The held-out group of a test task."""
    return "heldout_family" if instance.get("family") in TEST_FAMILIES else "heldout_repo"


def pick_tasks(instances: list[dict], n_train: int, n_test: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(train tasks, held-out tasks): `n_train` train tasks in a seeded order, and up to `n_test` test
    tasks taken from the two groups in turn; the same subsets for the same arguments."""
    insts = sorted(instances, key=lambda i: i["instance_id"])
    train = [i for i in insts if i["split"] == "train"]
    random.Random(seed).shuffle(train)
    by_group = {g: [i for i in insts if i["split"] == "test" and group_of(i) == g] for g in GROUPS}
    test: list[dict] = []
    while len(test) < n_test and any(by_group.values()):
        for g in GROUPS:
            if by_group[g] and len(test) < n_test:
                test.append(by_group[g].pop(0))
    return train[:n_train], test


def split_counts(instances: list[dict], train: list[dict], test: list[dict]) -> dict:
    """How many tasks the suite has per split, how many a run uses, and its held-out tasks per group."""
    return {
        "n": len(instances),
        "train_available": sum(i["split"] == "train" for i in instances),
        "test_available": sum(i["split"] == "test" for i in instances),
        "train_used": len(train),
        "test_used": len(test),
        "test_groups": {g: sum(group_of(i) == g for i in test) for g in GROUPS},
    }
