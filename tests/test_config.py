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
            if isinstance(v, dict):
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
        from_dict({"ae": {"latent_nosie": 0.1}})
    assert "ae.latent_nosie" in str(exc.value) and "ae.latent_noise" in str(exc.value)


@pytest.mark.parametrize("raw, fragment", [
    ({"ae": {"lr": -1.0}}, "ae.lr"),
    ({"collect": {"num_snapshots": 0}}, "collect.num_snapshots"),
    ({"ae": {"input_noise": -0.1}}, "ae.input_noise"),
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
    p = from_dict({"ae": {"lr": "1e-3"}})
    assert p.ae.lr == pytest.approx(1e-3)
