"""Every string the pages show, in English and Chinese."""

from __future__ import annotations

LANGUAGES = {"zh": "中文", "en": "English"}

TEXT: dict[str, dict[str, str]] = {
    "app.title": {"en": "Local Knowledge Assistant", "zh": "本地知识库助手"},
    "nav.start": {"en": "Start", "zh": "开始"},
    "nav.models": {"en": "Models", "zh": "模型"},
    "nav.knowledge": {"en": "Knowledge", "zh": "知识库"},
    "nav.chat": {"en": "Chat", "zh": "对话"},
    "lang.label": {"en": "Language", "zh": "语言"},
    # start page
    "start.intro": {
        "en": "Chat with your own documents using open models that run on this machine. Nothing leaves it.",
        "zh": "用在本机运行的开源模型，与自己的文档对话。所有数据都留在本机。",
    },
    "start.step1": {"en": "1. Load a chat model", "zh": "1. 加载对话模型"},
    "start.step1.body": {
        "en": "The bundled SmolLM2 model works at once, with no download. Larger models can be downloaded there too.",
        "zh": "内置的 SmolLM2 模型无需下载即可使用；也可以在那里下载更大的模型。",
    },
    "start.step2": {"en": "2. Build a knowledge base", "zh": "2. 建立知识库"},
    "start.step2.body": {
        "en": "Create a knowledge base and add a folder of documents (Markdown, text, code).",
        "zh": "新建知识库，添加一个文档文件夹（Markdown、文本、代码）。",
    },
    "start.step3": {"en": "3. Ask questions", "zh": "3. 提问"},
    "start.step3.body": {
        "en": "Answers stream as they are written, with the passages they come from.",
        "zh": "回答逐字生成，并附上出处段落。",
    },
    "start.model_loaded": {"en": "Loaded: {name}", "zh": "已加载：{name}"},
    "start.no_model": {"en": "No model loaded yet.", "zh": "尚未加载模型。"},
    "start.kb_count": {"en": "{n} knowledge base(s).", "zh": "已有 {n} 个知识库。"},
    "start.go": {"en": "Open", "zh": "前往"},
    # models page
    "models.title": {"en": "Models", "zh": "模型"},
    "models.catalog": {"en": "Catalog", "zh": "模型目录"},
    "models.catalog.pick": {"en": "Model to download, load or remove", "zh": "要下载、加载或删除的模型"},
    "models.col.name": {"en": "Model", "zh": "模型"},
    "models.col.params": {"en": "Parameters (B)", "zh": "参数量（十亿）"},
    "models.col.size": {"en": "Download (GB)", "zh": "下载大小（GB）"},
    "models.col.memory": {"en": "Memory bf16 / 8-bit / 4-bit (GB)", "zh": "显存 bf16 / 8位 / 4位（GB）"},
    "models.col.source": {"en": "Comes from", "zh": "来源"},
    "models.col.status": {"en": "Status", "zh": "状态"},
    "models.col.licence": {"en": "Licence", "zh": "许可"},
    "models.status.bundled": {"en": "bundled", "zh": "内置"},
    "models.status.remote": {"en": "server", "zh": "远程服务"},
    "models.status.missing": {"en": "not downloaded", "zh": "未下载"},
    "models.status.downloaded": {"en": "downloaded", "zh": "已下载"},
    "models.status.downloading": {"en": "downloading {pct}", "zh": "下载中 {pct}"},
    "models.status.loaded": {"en": "loaded", "zh": "已加载"},
    "models.source.embedded": {"en": "bundled with the app (PyPI)", "zh": "随应用安装（PyPI）"},
    "models.memory": {"en": "Memory in use", "zh": "内存占用"},
    "models.memory.ram": {"en": "RAM of this app", "zh": "本应用内存"},
    "models.memory.gpu": {"en": "GPU memory", "zh": "显存"},
    "models.selected": {"en": "{name}", "zh": "{name}"},
    "models.remote_code": {
        "en": "This model runs Python code shipped with its files (trust_remote_code).",
        "zh": "该模型会运行随模型文件发布的 Python 代码（trust_remote_code）。",
    },
    "models.download.header": {"en": "Download", "zh": "下载"},
    "models.download.hub": {"en": "Download from", "zh": "下载源"},
    "models.download.mirror": {"en": "Mirror URL (optional)", "zh": "镜像地址（可选）"},
    "models.download.mirror.help": {"en": "e.g. https://hf-mirror.com", "zh": "例如 https://hf-mirror.com"},
    "models.download.button": {"en": "Download", "zh": "下载"},
    "models.download.running": {"en": "Downloading {name}", "zh": "正在下载 {name}"},
    "models.download.progress": {
        "en": "{done:.2f} / {total:.2f} GB · {rate:.1f} MB/s · about {eta} left",
        "zh": "{done:.2f} / {total:.2f} GB · {rate:.1f} MB/秒 · 约剩 {eta}",
    },
    "models.download.done": {"en": "{name} is downloaded.", "zh": "{name} 已下载完成。"},
    "models.download.cancelled": {
        "en": "Download cancelled. Download again to continue where it stopped.",
        "zh": "下载已取消。再次下载会从中断处继续。",
    },
    "models.download.cancel": {"en": "Cancel download", "zh": "取消下载"},
    "models.folder.header": {"en": "Use a folder I already have", "zh": "使用已有文件夹"},
    "models.folder.path": {
        "en": "Folder with the model's files (config.json, weights, tokenizer)",
        "zh": "包含模型文件的文件夹（config.json、权重、分词器）",
    },
    "models.folder.button": {"en": "Use this folder", "zh": "使用该文件夹"},
    "models.folder.done": {"en": "{name} now loads from {path}.", "zh": "{name} 将从 {path} 加载。"},
    "models.delete": {"en": "Delete files", "zh": "删除文件"},
    "models.delete.confirm": {"en": "Delete the downloaded files of {name}?", "zh": "确定删除 {name} 已下载的文件？"},
    "models.delete.yes": {"en": "Yes, delete", "zh": "确认删除"},
    "models.deleted": {"en": "Deleted the files of {name}.", "zh": "已删除 {name} 的文件。"},
    "models.load.header": {"en": "Load", "zh": "加载"},
    "models.load.device": {"en": "Device", "zh": "设备"},
    "models.load.dtype": {"en": "Precision", "zh": "精度"},
    "models.load.quantization": {"en": "Quantization", "zh": "量化"},
    "models.load.quantization.help": {
        "en": "Needs a CUDA GPU and the bitsandbytes package.",
        "zh": "需要 CUDA 显卡和 bitsandbytes 包。",
    },
    "models.load.consent": {
        "en": "I trust this model's code and allow it to run",
        "zh": "我信任该模型的代码，允许其运行",
    },
    "models.load.memory": {
        "en": "Needs about {needed:.1f} GB; {free:.1f} GB free on {device}.",
        "zh": "约需 {needed:.1f} GB；{device} 上可用 {free:.1f} GB。",
    },
    "models.load.memory.warn": {
        "en": "This may not fit: it needs about {needed:.1f} GB but {device} has {free:.1f} GB free. Try 8-bit or 4-bit, a smaller model, or free memory.",
        "zh": "可能放不下：约需 {needed:.1f} GB，而 {device} 只有 {free:.1f} GB 可用。可尝试 8 位/4 位量化、更小的模型或释放内存。",
    },
    "models.load.button": {"en": "Load", "zh": "加载"},
    "models.load.running": {"en": "Loading {name}…", "zh": "正在加载 {name}…"},
    "models.load.step.convert": {
        "en": "Preparing the bundled model (first time only, about half a minute)…",
        "zh": "正在准备内置模型（仅首次，约半分钟）…",
    },
    "models.load.step.weights": {"en": "Reading the weights…", "zh": "正在读取权重…"},
    "models.load.step.warmup": {"en": "Warming up the GPU (compiling)…", "zh": "正在预热 GPU（编译中）…"},
    "models.load.done": {
        "en": "Loaded {name} on {device} in {seconds:.1f} s.",
        "zh": "已在 {device} 上加载 {name}，用时 {seconds:.1f} 秒。",
    },
    "models.loaded": {"en": "In memory: {name} ({device}, {dtype})", "zh": "当前模型：{name}（{device}，{dtype}）"},
    "models.unload": {"en": "Unload", "zh": "卸载"},
    "models.none_loaded": {"en": "No model in memory.", "zh": "内存中没有模型。"},
    "models.add.header": {"en": "Add a model", "zh": "添加模型"},
    "models.add.folder": {"en": "Local folder", "zh": "本地文件夹"},
    "models.add.hub": {"en": "Hub repository", "zh": "模型仓库"},
    "models.add.server": {"en": "Model server (OpenAI API)", "zh": "模型服务（OpenAI 接口）"},
    "models.add.name": {"en": "Display name (optional)", "zh": "显示名称（可选）"},
    "models.add.path": {"en": "Folder path", "zh": "文件夹路径"},
    "models.add.format": {
        "en": "Prompt format, if its tokenizer has no chat template",
        "zh": "提示格式（分词器没有对话模板时）",
    },
    "models.add.format.none": {"en": "its own chat template", "zh": "使用自带对话模板"},
    "models.add.repo": {
        "en": "Repository id, e.g. Qwen/Qwen2.5-3B-Instruct",
        "zh": "仓库名，例如 Qwen/Qwen2.5-3B-Instruct",
    },
    "models.add.url": {
        "en": "Base URL, e.g. http://localhost:8000/v1",
        "zh": "服务地址，例如 http://localhost:8000/v1",
    },
    "models.add.served": {"en": "Served model name", "zh": "服务中的模型名"},
    "models.add.key_env": {
        "en": "Environment variable holding the API key (optional)",
        "zh": "保存 API 密钥的环境变量名（可选）",
    },
    "models.add.button": {"en": "Add", "zh": "添加"},
    "models.added": {"en": "Added {name} to the catalog.", "zh": "已将 {name} 加入模型目录。"},
    "models.remove": {"en": "Remove from catalog", "zh": "从目录移除"},
    "models.gen.header": {"en": "Generation settings", "zh": "生成参数"},
    "models.gen.max_new_tokens": {"en": "Max new tokens", "zh": "最大生成长度"},
    "models.gen.temperature": {
        "en": "Temperature (0 = always the likeliest word)",
        "zh": "温度（0 表示总选最可能的词）",
    },
    "models.gen.top_p": {"en": "Top-p", "zh": "Top-p"},
    "models.gen.repetition_penalty": {"en": "Repetition penalty", "zh": "重复惩罚"},
    "models.try.header": {"en": "Try it", "zh": "试一试"},
    "models.try.prompt": {"en": "Say something to the model", "zh": "对模型说点什么"},
    "models.try.default": {"en": "Who are you?", "zh": "你是谁？"},
    "models.try.button": {"en": "Send", "zh": "发送"},
    # knowledge page
    "kb.title": {"en": "Knowledge bases", "zh": "知识库"},
    "kb.pick": {"en": "Knowledge base", "zh": "知识库"},
    "kb.none": {"en": "No knowledge base yet: create one below.", "zh": "还没有知识库，请在下方新建。"},
    "kb.create.header": {"en": "New knowledge base", "zh": "新建知识库"},
    "kb.create.name": {"en": "Name", "zh": "名称"},
    "kb.create.embedding": {"en": "Embedding model", "zh": "向量模型"},
    "kb.create.button": {"en": "Create", "zh": "创建"},
    "kb.created": {"en": "Created “{name}”.", "zh": "已创建“{name}”。"},
    "kb.stats": {
        "en": "{sources} source(s) · {files} file(s) · {chunks} chunk(s) · embedding: {embedding}",
        "zh": "{sources} 个来源 · {files} 个文件 · {chunks} 个片段 · 向量模型：{embedding}",
    },
    "kb.ingest.header": {"en": "Add a folder", "zh": "添加文件夹"},
    "kb.ingest.folder": {"en": "Folder path on this machine", "zh": "本机上的文件夹路径"},
    "kb.ingest.help": {
        "en": "Markdown, text, reStructuredText and source code are read; binaries are skipped. Adding the same folder again only updates what changed.",
        "zh": "读取 Markdown、文本、rst 和源代码，跳过二进制文件。再次添加同一文件夹只会更新有变化的文件。",
    },
    "kb.ingest.button": {"en": "Ingest", "zh": "导入"},
    "kb.ingest.running": {"en": "Ingesting into “{name}”", "zh": "正在导入“{name}”"},
    "kb.ingest.progress": {
        "en": "{done}/{total} files · {chunks} chunks embedded · {rate:.1f} chunks/s · about {eta} left",
        "zh": "{done}/{total} 个文件 · 已向量化 {chunks} 个片段 · {rate:.1f} 片段/秒 · 约剩 {eta}",
    },
    "kb.ingest.cancel": {"en": "Cancel", "zh": "取消"},
    "kb.ingest.done": {
        "en": "Done in {seconds:.0f} s: {ingested} file(s) ingested, {unchanged} unchanged, {removed} removed; {added} chunks added, {deleted} removed.",
        "zh": "完成，用时 {seconds:.0f} 秒：导入 {ingested} 个文件，{unchanged} 个未变，删除 {removed} 个；新增 {added} 个片段，删除 {deleted} 个。",
    },
    "kb.ingest.cancelled": {
        "en": "Ingestion was cancelled. Start it again to finish: nothing is done twice.",
        "zh": "导入已取消。再次导入即可完成，已完成的部分不会重复。",
    },
    "kb.ingest.interrupted": {
        "en": "The last ingestion was interrupted (the app stopped). Ingest the folder again to finish it.",
        "zh": "上次导入被中断（应用已停止）。再次导入该文件夹即可完成。",
    },
    "kb.ingest.failed": {"en": "Ingestion failed: {error}", "zh": "导入失败：{error}"},
    "kb.skipped": {"en": "Skipped files ({n})", "zh": "跳过的文件（{n} 个）"},
    "kb.skipped.path": {"en": "File", "zh": "文件"},
    "kb.skipped.reason": {"en": "Reason", "zh": "原因"},
    "kb.skipped.detail": {"en": "Detail", "zh": "说明"},
    "skip.ignored_folder": {"en": "tool or build folder", "zh": "工具或构建目录"},
    "skip.binary": {"en": "binary file", "zh": "二进制文件"},
    "skip.unsupported_type": {"en": "file type not read", "zh": "不支持的文件类型"},
    "skip.too_large": {"en": "too large", "zh": "文件过大"},
    "skip.empty": {"en": "empty", "zh": "空文件"},
    "skip.unreadable": {"en": "could not be read as text", "zh": "无法作为文本读取"},
    "skip.link_outside": {"en": "link outside the folder", "zh": "指向文件夹外的链接"},
    "kb.preview.header": {"en": "Chunks", "zh": "片段预览"},
    "kb.preview.file": {"en": "File", "zh": "文件"},
    "kb.preview.all_files": {"en": "All files", "zh": "全部文件"},
    "kb.preview.empty": {"en": "No chunks yet. Add a folder above.", "zh": "还没有片段，请先在上方添加文件夹。"},
    "kb.preview.pick": {"en": "Select a row to read the whole chunk.", "zh": "选中一行即可查看完整片段。"},
    "kb.preview.chunk": {"en": "{path}, lines {start}-{end}", "zh": "{path}，第 {start}-{end} 行"},
    "kb.col.path": {"en": "File", "zh": "文件"},
    "kb.col.seq": {"en": "#", "zh": "序号"},
    "kb.col.lines": {"en": "Lines", "zh": "行"},
    "kb.col.chars": {"en": "Characters", "zh": "字符数"},
    "kb.col.text": {"en": "Text", "zh": "内容"},
    # chat page
    "chat.title": {"en": "Chat", "zh": "对话"},
    "chat.kbs": {"en": "Knowledge bases to search", "zh": "检索的知识库"},
    "chat.kbs.help": {
        "en": "Leave empty to chat with the model alone.",
        "zh": "留空则直接与模型对话，不检索知识库。",
    },
    "chat.top_k": {"en": "Passages per answer", "zh": "每次检索的片段数"},
    "chat.model": {"en": "Model: {name}", "zh": "模型：{name}"},
    "chat.no_model": {"en": "Load a model on the Models page first.", "zh": "请先在“模型”页面加载模型。"},
    "chat.input": {"en": "Ask a question about your documents", "zh": "就文档提出问题"},
    "chat.clear": {"en": "New conversation", "zh": "新对话"},
    "chat.sources": {"en": "Sources ({n})", "zh": "出处（{n} 条）"},
    "chat.source": {"en": "[{rank}] {label} · relevance {score:.2f}", "zh": "[{rank}] {label} · 相关度 {score:.2f}"},
    "chat.no_sources": {"en": "No passage was found for this question.", "zh": "没有找到与该问题相关的片段。"},
    "chat.searching": {"en": "Searching the knowledge base…", "zh": "正在检索知识库…"},
    "time.s": {"en": "{n:.0f} s", "zh": "{n:.0f} 秒"},
    "time.min": {"en": "{n:.0f} min", "zh": "{n:.0f} 分钟"},
    "time.unknown": {"en": "unknown", "zh": "未知"},
}


def lookup(key: str, lang: str, **params: object) -> str:
    """The text ``key`` in ``lang`` (English when missing), filled with ``params``."""
    entry = TEXT[key]
    template = entry.get(lang) or entry["en"]
    return template.format(**params) if params else template


def language_for(locale: str | None) -> str:
    """The UI language for a browser locale: Chinese when the browser asks for it.

    >>> language_for("zh-CN"), language_for("en-US"), language_for(None)
    ('zh', 'en', 'en')
    """
    return "zh" if locale and locale.lower().startswith("zh") else "en"
