"""Where a project keeps its topology and registry: given > environment > working directory > embedded."""

from domicile.config.project import embedded_root, registry_dir, topology_file
from tests.conftest import ROOT


def test_the_given_path_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("DOMICILE_TOPOLOGY", str(tmp_path / "env.toml"))
    assert topology_file(tmp_path / "given.toml") == tmp_path / "given.toml"
    assert registry_dir(tmp_path / "reg") == tmp_path / "reg"


def test_the_environment_comes_next(monkeypatch, tmp_path):
    monkeypatch.setenv("DOMICILE_TOPOLOGY", str(tmp_path / "env.toml"))
    monkeypatch.setenv("DOMICILE_MODELS", str(tmp_path / "env-models"))
    assert topology_file() == tmp_path / "env.toml"
    assert registry_dir() == tmp_path / "env-models"


def test_a_project_folder_comes_before_the_embedded_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("DOMICILE_TOPOLOGY", raising=False)
    monkeypatch.delenv("DOMICILE_MODELS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert topology_file() == embedded_root() / "domicile.toml"  # nothing here yet
    assert registry_dir() == embedded_root() / "models"
    (tmp_path / "domicile.toml").write_text("")
    (tmp_path / "models").mkdir()
    assert topology_file() == tmp_path / "domicile.toml"
    assert registry_dir() == embedded_root() / "models"  # a models/ folder without a manifest is not a registry
    (tmp_path / "models" / "manifest.json").write_text("{}")
    assert registry_dir() == tmp_path / "models"


def test_in_the_checkout_the_embedded_defaults_are_the_checkouts_own():
    assert embedded_root() == ROOT  # an editable install maps domicile_defaults onto the checkout's root
