"""Knob choices and the other user-set numbers are checked with the configuration: a bad value is one UserError
naming the setting, the value and what is allowed, before any work (not when a trial draws it)."""
import json
import math
import re

import pytest

from modelsearch.config import DEFAULT_KNOBS, SearchConfig, load_config, optimizer_names
from modelsearch.errors import UserError

BAD_KNOBS = [
    ("optimizer", "nope", "unknown optimizer 'nope'; choose from adam, adamw, rmsprop, sgd"),
    ("optimizer", "", "unknown optimizer ''"),
    ("optimizer", 1, "unknown optimizer 1"),
    ("optimizer", True, "unknown optimizer True"),
    ("optimizer", None, "unknown optimizer None"),
    ("learning_rate", 0, "0 is not a learning rate; choose finite numbers > 0"),
    ("learning_rate", -0.001, "-0.001 is not a learning rate"),
    ("learning_rate", math.nan, "nan is not a learning rate"),
    ("learning_rate", math.inf, "inf is not a learning rate"),
    ("learning_rate", True, "True is not a learning rate"),
    ("learning_rate", "0.001", "'0.001' is not a learning rate"),
    ("learning_rate", None, "None is not a learning rate"),
    ("batch_size", 0, "0 is not a batch size; choose whole numbers >= 1"),
    ("batch_size", -32, "-32 is not a batch size"),
    ("batch_size", 32.5, "32.5 is not a batch size"),
    ("batch_size", 32.0, "32.0 is not a batch size"),
    ("batch_size", True, "True is not a batch size"),
    ("batch_size", "64", "'64' is not a batch size"),
    ("batch_size", math.nan, "nan is not a batch size"),
    ("dropout", 1, "1 is not a dropout rate; choose numbers in [0, 1)"),
    ("dropout", 1.5, "1.5 is not a dropout rate"),
    ("dropout", -0.1, "-0.1 is not a dropout rate"),
    ("dropout", math.nan, "nan is not a dropout rate"),
    ("dropout", True, "True is not a dropout rate"),
    ("dropout", False, "False is not a dropout rate"),
    ("dropout", "0.1", "'0.1' is not a dropout rate"),
    ("dropout", None, "None is not a dropout rate"),
]


@pytest.mark.parametrize("knob, value, expected", BAD_KNOBS)
def test_bad_knob_choice(knob, value, expected):
    with pytest.raises(UserError) as error:
        SearchConfig.from_json({"knobs": {knob: [DEFAULT_KNOBS[knob][0], value]}}, source="search configuration x.json")
    message = str(error.value)
    assert message.startswith(f"search configuration x.json: knob {knob}: ") and expected in message
    assert "\n" not in message


def test_message_as_documented():
    with pytest.raises(UserError) as error:
        SearchConfig.from_json({"knobs": {"optimizer": ["nope"]}}, source="search configuration x.json")
    assert str(error.value) == ("search configuration x.json: knob optimizer: unknown optimizer 'nope'; "
                                "choose from adam, adamw, rmsprop, sgd")


def test_a_directly_built_config_is_checked_too():
    with pytest.raises(UserError, match="knob dropout: 1.0 is not a dropout rate"):
        SearchConfig(knobs={"dropout": [1.0]}).check()


@pytest.mark.parametrize("knobs", [
    {},
    DEFAULT_KNOBS,
    {"optimizer": ["Adam", "SGD", "adamw", "rmsprop"]},  # the trainer lower-cases the name
    {"learning_rate": [1e-5, 0.5, 1, 10.0]},
    {"batch_size": [1, 7, 4096]},
    {"dropout": [0, 0.0, 0.5, 0.999]},
])
def test_good_knobs_pass(knobs):
    config = SearchConfig.from_json({"knobs": knobs})
    assert set(config.knobs) == set(DEFAULT_KNOBS)


def test_the_allowed_optimizers_are_the_ones_the_trainer_builds():
    from blocks.builder import OPTIMIZERS, make_optimizer
    assert optimizer_names() == sorted(OPTIMIZERS)
    assert set(DEFAULT_KNOBS["optimizer"]) <= set(OPTIMIZERS)
    for name in optimizer_names():
        assert type(make_optimizer({"optimizer": name, "learning_rate": 0.01})).__name__.lower() == name
    with pytest.raises(UserError):
        make_optimizer({"optimizer": "nope"})


@pytest.mark.parametrize("settings, expected", [
    ({"p_deeper": True}, "p_deeper must be a probability"),
    ({"p_deeper": math.nan}, "p_deeper must be a probability"),
    ({"p_deeper": "0.5"}, "p_deeper must be a probability"),
    ({"initial_depth": [True, 2]}, "initial_depth must be [min, max]"),
    ({"initial_depth": [1.0, 2]}, "initial_depth must be [min, max]"),
    ({"max_epochs": True}, "max_epochs must be a positive whole number"),
    ({"patience": 2.5}, "patience must be a positive whole number"),
    ({"trials": math.nan}, "trials must be a positive whole number"),
    ({"distillation": {"weight": math.nan}}, "distillation.weight must be a number"),
    ({"student": {"tolerance": math.inf}}, "student.tolerance must be a number"),
    ({"ensemble": {"top_k": True}}, "ensemble.top_k must be a whole number"),
])
def test_other_numbers(settings, expected):
    with pytest.raises(UserError, match="^search settings: " + re.escape(expected)):
        SearchConfig.from_json(settings, source="search settings")


def test_a_config_file_names_itself(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"knobs": {"batch_size": [64, 0]}}))
    with pytest.raises(UserError, match="^" + re.escape(f"search configuration {path}: knob batch_size: 0 is not")):
        load_config(str(path))


# ---- the CLI: exit 2, one line, no traceback, before any pipeline ------------------------------------------

@pytest.mark.parametrize("knobs, expected", [
    ({"optimizer": ["nope"]}, "knob optimizer: unknown optimizer 'nope'; choose from adam, adamw, rmsprop, sgd"),
    ({"dropout": [0.1, 1.5]}, "knob dropout: 1.5 is not a dropout rate; choose numbers in [0, 1)"),
    ({"learning_rate": [0]}, "knob learning_rate: 0 is not a learning rate"),
    ({"batch_size": [True]}, "knob batch_size: True is not a batch size"),
])
def test_cli_stops_on_a_bad_knob(tmp_path, capsys, knobs, expected):
    from pipelines.cli import main

    data = tmp_path / "d.csv"
    data.write_text("a,b,label\n" + "".join(f"{i % 7},{i * 0.5},{i % 3}\n" for i in range(30)))
    config = tmp_path / "x.json"
    config.write_text(json.dumps({"knobs": knobs}))
    out = tmp_path / "o"
    code = main(["run", "--data", str(data), "--label", "label", "--config", str(config), "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if not line.startswith("[modelsearch]")]
    assert len(errors) == 1 and errors[0].startswith(f"modelsearch: error: search configuration {config}: knob ")
    assert expected in errors[0]
    assert not (out / "trials.sqlite").exists()  # nothing was started
