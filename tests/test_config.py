import pydantic
import pytest
import yaml

from pdiff.core.config import ConfigError, Params, describe, from_dict, load_params
from tests.conftest import ROOT


def test_repo_params_load_and_match_schema_defaults_keys():
    p = load_params(ROOT / "params.yaml")
    assert isinstance(p, Params)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())

    def leaves(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict) and f"{prefix}{k}" != "user":  # user: your generators' free-form groups
                yield from leaves(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}"

    schema_keys = {k for k, _, _ in describe()}
    assert set(leaves(raw)) == schema_keys  # every schema key is in params.yaml and vice versa


def test_every_key_is_documented():
    for key, _, help_text in describe():
        assert len(help_text) > 5, key


def test_unknown_key_suggests_close_match():
    with pytest.raises(ConfigError) as exc:
        from_dict({"conv_ae": {"train_ae": {"latent_nosie": 0.1}}})
    assert "conv_ae.train_ae.latent_nosie" in str(exc.value) and "conv_ae.train_ae.latent_noise" in str(exc.value)


@pytest.mark.parametrize("raw, fragment", [
    ({"conv_ae": {"train_ae": {"lr": -1.0}}}, "conv_ae.train_ae.lr"),
    ({"collect": {"num_snapshots": 0}}, "collect.num_snapshots"),
    ({"conv_ae": {"train_ae": {"input_noise": -0.1}}}, "conv_ae.train_ae.input_noise"),
    ({"model": {"arch": "resnet9000"}}, "model.arch"),
    ({"data": {"name": "imagenet22k"}}, "data.name"),
    ({"train": {"epochs": "ten"}}, "train.epochs"),
    ({"collect": {"params": "last"}}, "collect.params"),
])
def test_bad_values_name_the_key(raw, fragment):
    with pytest.raises(ConfigError) as exc:
        from_dict(raw)
    assert fragment in str(exc.value)


def test_yaml_exponent_strings_become_floats():
    p = from_dict({"conv_ae": {"train_ae": {"lr": "1e-3"}}})
    assert p.conv_ae.train_ae.lr == pytest.approx(1e-3)


@pytest.mark.parametrize("raw, message", [
    ({"train": {"epochs": True}}, "`train.epochs` = True has the wrong type; expected an integer."),
    ({"train": {"epochs": 2.0}}, "`train.epochs` = 2.0 has the wrong type; expected an integer."),
    ({"data": {"download": 1}}, "`data.download` = 1 has the wrong type; expected true or false."),
    ({"data": {"root": 5}}, "`data.root` = 5 has the wrong type; expected a string."),
    ({"conv_ae": {"train_ae": {"lr": "fast"}}},
     "`conv_ae.train_ae.lr` = 'fast' has the wrong type; expected a number."),
    ({"conv_ae": {"train_ae": {"channels": [16, "x"]}}},
     "`conv_ae.train_ae.channels[1]` = 'x' has the wrong type; expected an integer."),
    ({"conv_ae": {"train_ae": {"channels": [0, 4]}}},
     "`conv_ae.train_ae.channels` = [0, 4] is out of range; it must be >= 1."),
    ({"collect": {"params": ["bn3.*", 5]}}, "`collect.params` = ['bn3.*', 5] has the wrong type; expected a string "
                                            "or a list of strings."),
    ({"train": {"momentum": 1.5}}, "`train.momentum` = 1.5 is out of range; it must be <= 1."),
    ({"conv_ae": {"train_ae": {"lr": 0}}}, "`conv_ae.train_ae.lr` = 0 is out of range; it must be > 0."),
    ({"device": "tpu"}, "`device` = 'tpu' is not allowed; choose one of: auto, cpu, cuda."),
    ({"conv_ae": {"train_ae": 5}}, "`conv_ae.train_ae` must be a mapping of keys, got 5."),
    ({"sed": 1}, "unknown key `sed`. Did you mean `seed`?"),
])
def test_errors_are_one_line_with_key_value_and_what_is_allowed(raw, message):
    with pytest.raises(ConfigError) as exc:
        from_dict(raw)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_an_empty_group_means_its_defaults_and_ints_are_accepted_for_floats():
    p = from_dict({"conv_ae": {"train_ae": None, "train_ldm": {"lr": 1}}})
    lr = p.conv_ae.train_ldm.lr
    assert p.conv_ae.train_ae.channels == [16, 32, 64] and lr == 1.0 and isinstance(lr, float)


def test_opt_choices_and_bounds_apply_to_any_new_key():
    from pdiff.core.config import Section, opt

    class Extra(Section):
        mode: str = opt("a", "a test key", choices=("a", "b"))
        count: int = opt(2, "another", ge=1, le=3)
        widths: list[int] = opt([1], "a list", gt=0)

    assert Extra.model_validate({"mode": "b", "count": 3}).mode == "b"
    for bad in ({"mode": "c"}, {"count": 4}, {"count": 0}, {"widths": [1, 0]}):
        with pytest.raises(pydantic.ValidationError):
            Extra.model_validate(bad)


def test_the_parameters_page_holds_the_schema_tables_as_a_generated_block():
    """Every key of the schema has a row in the block that tools.doc_numbers fills (and tests/test_doc_numbers.py
    keeps up to date)."""
    from pdiff.core.config import describe
    from tools.doc_numbers import BLOCK
    from tools.params_doc import tables

    text = (ROOT / "docs/parameters.md").read_text()
    blocks = {m["source"]: m["body"] for m in BLOCK.finditer(text)}
    assert "tools.params_doc:tables" in blocks
    rows = tables()
    assert all(f"| `{key}` |" in rows for key, _, _ in describe())


def test_task_pipeline_checks_do_not_stop_the_default_pipeline():
    """Guidance without condition dropout is an error for the task stages only: the default pipeline never reads
    the `tasks*` groups. The task evaluation's sampling settings moved to the generator's own generate group, and
    the old keys say where."""
    from pdiff.core.config import validate_tasks

    p = from_dict({"tasks_ldm": {"cond_dropout": 0.0}, "tasks_eval": {"guidance": 2.0}})
    with pytest.raises(ConfigError, match=r"guidance scale 2.0 .* `tasks_ldm.cond_dropout` = 0 never trains"):
        validate_tasks(p)
    assert validate_tasks(from_dict({"tasks_eval": {"guidance": 1.0, "val_guidance": [1.0]},
                                     "tasks_ldm": {"cond_dropout": 0.0}})).tasks_eval.guidance == 1.0
    for key in ("sampler", "steps"):
        with pytest.raises(ConfigError, match=rf"`tasks_eval.{key}` has moved: .*`conv_ae.generate.{key}`"):
            from_dict({"tasks_eval": {key: "ddim" if key == "sampler" else 50}})


@pytest.mark.parametrize("raw, fragment", [
    ({"ae": {"steps": 5}}, "`ae` has moved: the conv AE's keys are `conv_ae.train_ae.*`"),
    ({"generate": {"sampler": "ddim"}}, "`generate.sampler` has moved"),
    ({"tokens": {"clip": 2.0}}, "`tokens.clip` has moved: `tokens.generate.clip`"),
])
def test_keys_from_before_the_per_generator_groups_say_where_they_are_now(raw, fragment):
    with pytest.raises(ConfigError) as exc:
        from_dict(raw)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)
