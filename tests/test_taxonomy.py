"""The action taxonomy: the shipped file covers every loader's classes, merges shared actions, and
refuses unknown names with a clear error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from unihar.data.datasets import SkeletonDataset
from unihar.data.datasets.mpose import MPOSE_CLASSES
from unihar.data.datasets.msr_action3d import MSR_ACTION3D_CLASSES
from unihar.data.datasets.nw_ucla import NW_UCLA_CLASSES
from unihar.data.datasets.penn_action import PENN_ACTION_CLASSES
from unihar.data.datasets.sbu import SBU_CLASSES
from unihar.data.datasets.ur_fall import UR_FALL_CLASSES
from unihar.data.datasets.ut_kinect import UT_KINECT_CLASSES
from unihar.data.datasets.utd_mhad import UTD_MHAD_CLASSES
from unihar.data.layouts import get_layout
from unihar.data.taxonomy import TAXONOMY_FILE, apply_taxonomy, dataset_key, load_taxonomy
from unihar.errors import InputError

REQUIRED = (
    "walk",
    "run",
    "sit_down",
    "stand_up",
    "pick_up",
    "throw",
    "carry",
    "push",
    "pull",
    "wave",
    "clap",
    "catch",
    "kick",
    "punch",
    "bend",
    "fall",
    "phone_call",
    "hug",
    "shake_hands",
) + PENN_ACTION_CLASSES
# mall-cctv's classes come from its class_map.json, in ID order.
MALL_CLASSES = (
    "sitting",
    "walking_slow",
    "walking_fast",
    "standing",
    "standing_phone_talking",
    "window_shopping",
    "walking_phone",
    "wandering",
    "walking_phone_talking",
    "walking_cart",
    "sitting_phone_talking",
)
LOADER_CLASSES = {
    "penn-action": PENN_ACTION_CLASSES,
    "mpose": MPOSE_CLASSES,
    "nw-ucla": NW_UCLA_CLASSES,
    "ut-kinect": UT_KINECT_CLASSES,
    "msr-action3d": MSR_ACTION3D_CLASSES,
    "mall-cctv": MALL_CLASSES,
    "sbu": SBU_CLASSES,
    "ur-fall": UR_FALL_CLASSES,
    "utd-mhad": UTD_MHAD_CLASSES,
}


def _dataset(classes, labels, name="nw-ucla/train") -> SkeletonDataset:
    seqs = [np.zeros((2, 13, 3), dtype=np.float32) for _ in labels]
    return SkeletonDataset(seqs, np.asarray(labels), list(classes), get_layout("penn13"), name=name)


def test_required_names_exist_and_penn_is_unchanged():
    taxonomy = load_taxonomy()
    missing = [name for name in REQUIRED if name not in taxonomy.classes]
    assert missing == []
    assert taxonomy.mapping("penn-action") == {c: c for c in PENN_ACTION_CLASSES}


def test_every_loader_class_is_mapped_and_every_canonical_class_is_used():
    taxonomy = load_taxonomy()
    assert set(taxonomy.datasets) == set(LOADER_CLASSES)
    for dataset, classes in LOADER_CLASSES.items():
        assert sorted(taxonomy.mapping(dataset)) == sorted(classes), dataset
    used = {c for mapping in taxonomy.datasets.values() for c in mapping.values()}
    assert used == set(taxonomy.classes)


@pytest.mark.parametrize(
    "dataset,name,canonical",
    [
        ("msr-action3d", "jogging", "run"),
        ("utd-mhad", "jog", "run"),
        ("msr-action3d", "tennis_swing", "tennis_forehand"),
        ("utd-mhad", "bowling", "bowl"),
        ("utd-mhad", "squat", "squat"),
        ("mall-cctv", "standing_phone_talking", "phone_call"),
        ("sbu", "punching", "punch"),
        ("sbu", "hugging", "hug"),
        ("sbu", "shaking_hands", "shake_hands"),
        ("nw-ucla", "walk_around", "walk"),
        ("ut-kinect", "wave_hands", "wave"),
        ("utd-mhad", "stand_to_sit", "sit_down"),
        ("ur-fall", "fall", "fall"),
        ("ur-fall", "not_fall", "not_fall"),
    ],
)
def test_chosen_mappings(dataset, name, canonical):
    assert load_taxonomy().canonical(dataset, name) == canonical


def test_walk_merges_across_datasets_and_not_fall_is_a_negative():
    taxonomy = load_taxonomy()
    walkers = {d for d, mapping in taxonomy.datasets.items() if "walk" in mapping.values()}
    assert {"nw-ucla", "ut-kinect", "mall-cctv", "sbu", "utd-mhad"} <= walkers
    assert taxonomy.negated("not_fall") == ("fall",) and taxonomy.negated("walk") == ()


def test_apply_merges_classes_and_keeps_the_samples():
    data = _dataset(NW_UCLA_CLASSES, [0, 1, 3, 1, 9])
    out = apply_taxonomy(data)
    assert out.classes[:3] == ["pick_up", "drop_trash", "walk"] and len(out.classes) == 9
    assert [out.classes[i] for i in out.labels] == ["pick_up", "pick_up", "walk", "pick_up", "carry"]
    assert len(out) == len(data) and out.names == data.names
    assert dataset_key(_dataset(["fall"], [0], name="ur-fall/test")) == "ur-fall"


def test_unknown_class_and_unknown_dataset_are_clear_errors():
    with pytest.raises(InputError, match="dataset 'nw-ucla' has no entry for class 'juggle'"):
        apply_taxonomy(_dataset(["walk_around", "juggle"], [0, 1]))
    with pytest.raises(InputError, match="unknown dataset 'kinetics'"):
        apply_taxonomy(_dataset(["walk"], [0], name="kinetics/train"))


def test_bad_taxonomy_files_are_refused(tmp_path):
    good = json.loads(TAXONOMY_FILE.read_text())
    bad_target = dict(good, datasets={"toy": {"a": "no_such_class"}})
    (tmp_path / "target.json").write_text(json.dumps(bad_target))
    with pytest.raises(InputError, match=r"maps to \['no_such_class'\]"):
        load_taxonomy(tmp_path / "target.json")
    bad_name = dict(good, classes={"Walk Fast": ""}, datasets={}, negatives={})
    (tmp_path / "name.json").write_text(json.dumps(bad_name))
    with pytest.raises(InputError, match="lower_snake_case"):
        load_taxonomy(tmp_path / "name.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_taxonomy(tmp_path / "broken.json")
    with pytest.raises(InputError, match="not found"):
        load_taxonomy(tmp_path / "absent.json")
    custom = dict(good, datasets={"toy": {"a": "walk", "b": "walk"}})
    (tmp_path / "custom.json").write_text(json.dumps(custom))
    out = apply_taxonomy(_dataset(["a", "b"], [0, 1]), "toy", load_taxonomy(tmp_path / "custom.json"))
    assert out.classes == ["walk"] and out.labels.tolist() == [0, 0]
