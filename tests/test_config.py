"""harness/config.py: file → profile → variant → --set merge order, the hash, and the errors."""

import re
import textwrap

import pytest

from harness.config import (apply_override, config_hash, load_run_config, parse_value,
                            split_method_spec)
from harness.errors import ConfigError, UnknownNameError


@pytest.fixture
def method_config(tmp_path):
    """A method config with an mmengine `_base_`, profiles and variants."""
    base = tmp_path / "_base_"
    base.mkdir()
    (base / "bench.py").write_text("runtime = dict(eval_batch_size=64, save_checkpoint=False)\n"
                                   "protocol = dict(minmax=True)\n")
    path = tmp_path / "toy.py"
    path.write_text(textwrap.dedent("""
        _base_ = ['_base_/bench.py']
        method = dict(type='toy', input_size=32, T=6, slots=dict(groups=6, samples=2))
        train = dict(epochs=10, lr=1e-3)
        profiles = dict(smoke=dict(train=dict(epochs=1)), ci=dict(train=dict(epochs=3)), full=dict())
        variants = dict(T1=dict(method=dict(T=1)), zeroshot=dict(method=dict(finetune=False)))
    """))
    return path


def resolve(path, spec="toy", profile="full", overrides=(), dataset="synthref"):
    return load_run_config(spec, dataset, profile, list(overrides), config_path=path)


def test_merge_order_file_profile_variant_set(method_config):
    plain = resolve(method_config)
    assert plain.cfg["train"] == {"epochs": 10, "lr": 1e-3}
    assert plain.cfg["runtime"]["eval_batch_size"] == 64           # from _base_
    assert "profiles" not in plain.cfg and "variants" not in plain.cfg

    smoke_t1 = resolve(method_config, "toy@T1", "smoke", ["method.T=2", "train.lr=0.5"])
    assert (smoke_t1.method, smoke_t1.variant, smoke_t1.spec) == ("toy", "T1", "toy@T1")
    assert smoke_t1.cfg["train"] == {"epochs": 1, "lr": 0.5}        # profile, then --set
    assert smoke_t1.cfg["method"]["T"] == 2                         # --set beats the variant
    assert smoke_t1.cfg["method"]["slots"] == {"groups": 6, "samples": 2}  # nested dicts merge

    variant_only = resolve(method_config, "toy@T1", "ci")
    assert variant_only.cfg["method"]["T"] == 1 and variant_only.cfg["train"]["epochs"] == 3


def test_hash_changes_with_what_is_computed_only(method_config):
    base = resolve(method_config).config_hash
    assert len(base) == 12 and int(base, 16) >= 0
    assert resolve(method_config).config_hash == base               # deterministic
    assert resolve(method_config, overrides=["train.epochs=11"]).config_hash != base
    assert resolve(method_config, profile="smoke").config_hash != base
    assert resolve(method_config, dataset="synthref+").config_hash != base
    assert resolve(method_config, "toy@T1").config_hash != base
    # Setting a key to the value it already has computes the same thing: same hash.
    assert resolve(method_config, overrides=["train.epochs=10"]).config_hash == base
    # Key order in the dict does not matter.
    assert config_hash({"a": 1, "b": {"c": 2, "d": 3}}, "x", "full") == \
        config_hash({"b": {"d": 3, "c": 2}, "a": 1}, "x", "full")


def test_set_values_are_literals_else_strings():
    assert parse_value("3") == 3 and parse_value("1e-4") == 1e-4
    assert parse_value("[1, 2]") == [1, 2] and parse_value("False") is False
    assert parse_value("/data/vit.npz") == "/data/vit.npz"
    cfg = {"method": {"vit": {}}}
    apply_override(cfg, "+method.vit.checkpoint=/ckpt/vit.npz")   # a new key, marked so
    apply_override(cfg, "+method.bert.checkpoint=/ckpt/bert")     # new section below a known key
    assert cfg["method"] == {"vit": {"checkpoint": "/ckpt/vit.npz"},
                             "bert": {"checkpoint": "/ckpt/bert"}}


@pytest.mark.parametrize("assignment, named", [
    ("trian.epochs=3", "trian"),            # unknown top-level key
    ("train.lr.value=3", "train.lr"),       # a path through a float
    ("train.epochs", "train.epochs"),       # no '='
])
def test_bad_overrides_name_the_key(method_config, assignment, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        resolve(method_config, overrides=[assignment])


def test_unknown_profile_and_variant(method_config):
    with pytest.raises(UnknownNameError, match="profile 'huge'.*ci, full, smoke"):
        resolve(method_config, profile="huge")
    with pytest.raises(UnknownNameError, match="variant 'T9'.*T1, zeroshot"):
        resolve(method_config, "toy@T9")
    with pytest.raises(ConfigError, match="NAME@VARIANT"):
        split_method_spec("toy@")


def test_missing_or_broken_config_file(tmp_path):
    with pytest.raises(ConfigError, match="nothere.py: config file not found"):
        resolve(tmp_path / "nothere.py")
    broken = tmp_path / "broken.py"
    broken.write_text("method = dict(type='x'\n")
    with pytest.raises(ConfigError, match="broken.py: cannot be read"):
        resolve(broken)


def test_repository_base_configs_and_floors():
    """The floors need no file: the family's base with min-max off (a constant map stays 1)."""
    whole = load_run_config("whole", "synthref", "full")
    assert whole.source is None
    assert whole.cfg["protocol"]["minmax"] is False
    assert whole.cfg["method"] == {"type": "whole", "finetune": False}
    assert whole.cfg["runtime"]["eval_batch_size"] == 64
    assert whole.cfg["protocol"]["crf"]["iterations"] == 10
    real = load_run_config("objects", "refcoco", "smoke")
    assert real.cfg["runtime"]["eval_batch_size"] == 16 and real.profile == "smoke"
    with pytest.raises(UnknownNameError, match="variant"):
        load_run_config("whole@T1", "synthref", "full")


# ------------------------------------------------------------ --set: the type of the key replaced

def _typed(old, text, key="method.x"):
    cfg = {"method": {"x": old}}
    apply_override(cfg, f"{key}={text}")
    return cfg["method"]["x"]


@pytest.mark.parametrize("old, text, expected", [
    (True, "false", False), (True, "FALSE", False), (False, "True", True), (False, "1", True),
    (True, "0", False), (6, "2", 2), (1e-5, "3e-4", 3e-4), (1e-5, "1", 1.0), (0.5, "1", 1.0),
    ("ours", "avg", "avg"), ("ours", "'max'", "max"), ("a", "123", "123"),
    ([0.5], "[0.4, 0.6]", [0.4, 0.6]), ([0.5], "0.3", [0.3]), ([1, 2], "3,4", [3, 4]),
    ((0.5, 0.5), "(0.4, 0.3)", (0.4, 0.3)), (["a {}."], "['b {}.', 'c {}.']", ["b {}.", "c {}."]),
    (None, "/ckpt/vit.npz", "/ckpt/vit.npz"), (None, "3", 3), (4, "None", None), ("x", "null", None),
    ({"groups": 6}, "{'groups': 2}", {"groups": 2}),
])
def test_set_values_take_the_type_of_the_key_they_replace(old, text, expected):
    value = _typed(old, text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("old, text, expected_type", [
    (True, "yes", "bool"), (True, "2", "bool"), (6, "2.5", "int"), (6, "six", "int"), (6, "true", "int"),
    (1e-5, "fast", "float"), (1e-5, "True", "float"), ([0.5], "['a']", "list of float"),
    ({"groups": 6}, "3", "dict"),
])
def test_a_value_that_does_not_fit_names_key_type_and_value(old, text, expected_type):
    pattern = rf"--set method\.x={re.escape(text)}: expected {expected_type}.*got [\"']{re.escape(text)}[\"']"
    with pytest.raises(ConfigError, match=pattern):
        _typed(old, text)


def test_interaction_false_really_turns_it_off(method_config):
    """The bug of issue 12: 'false' became the truthy string 'false'."""
    path = method_config
    path.write_text(path.read_text().replace("T=6,", "T=6, interaction=True,"))
    resolved = resolve(path, overrides=["method.interaction=false"])
    assert resolved.cfg["method"]["interaction"] is False
    assert resolve(path, overrides=["method.interaction=0"]).config_hash == resolved.config_hash
    with pytest.raises(ConfigError, match="method.interaction=off: expected bool"):
        resolve(path, overrides=["method.interaction=off"])
    assert resolve(path, overrides=["+method.new_key=false"]).cfg["method"]["new_key"] == "false"
