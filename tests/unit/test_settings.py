import stat

from core.settings import Settings


def test_environment_overrides_defaults(monkeypatch, tmp_path):
    monkeypatch.setenv("KBA_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("KBA_TOP_K", "7")
    settings = Settings()
    assert settings.data_dir == tmp_path / "elsewhere" and settings.top_k == 7
    assert settings.models_dir == tmp_path / "elsewhere" / "models"


def test_data_folder_is_private_to_its_owner(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_dirs()
    assert stat.S_IMODE(settings.data_dir.stat().st_mode) == 0o700
