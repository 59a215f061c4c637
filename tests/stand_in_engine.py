"""A stand-in for the OpenAI-compatible servers of vLLM, LMDeploy and SGLang, which need a GPU
and cannot be installed here.

It reads the command line each engine's server reads, by the flags' real names (an unknown flag
fails with exit code 2, as argparse does in the engines), prints log lines, "loads" the model
(the folder must hold a config.json, else it exits with code 1 as an engine does), then serves
/health, /v1/models and /v1/chat/completions on the host and port it was given until SIGTERM.

:func:`install` lays out fake ``vllm``, ``lmdeploy`` (with its console script) and ``sglang``
packages whose entry points run it, for tests to put on the paths the app looks at.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPLY = "Served by the stand-in engine."


def _log(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _parser(engine: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=engine)
    if engine == "vllm":
        for flag in (
            "--model",
            "--host",
            "--port",
            "--served-model-name",
            "--gpu-memory-utilization",
            "--max-model-len",
        ):
            parser.add_argument(flag, required=True)
    elif engine == "lmdeploy":
        parser.add_argument("command", choices=["serve"])
        parser.add_argument("subcommand", choices=["api_server"])
        parser.add_argument("model_path")
        for flag in ("--server-name", "--server-port", "--model-name", "--cache-max-entry-count", "--session-len"):
            parser.add_argument(flag, required=True)
    else:
        for flag in ("--model-path", "--host", "--port", "--served-model-name", "--mem-fraction-static"):
            parser.add_argument(flag, required=True)
        parser.add_argument("--context-length", required=True)
    return parser


def main(engine: str, argv: list[str] | None = None) -> None:
    """Run the stand-in of ``engine`` on ``argv`` (the process's own by default)."""
    from tests.openai_server import OpenAIServer

    args = vars(_parser(engine).parse_args(argv))
    model = args.get("model") or args.get("model_path")
    name = args.get("served_model_name") or args.get("model_name")
    port = int(args.get("port") or args.get("server_port"))
    _log(f"INFO {engine} stand-in: loading {model} as {name}")
    if not (Path(model) / "config.json").is_file():
        _log(f"ERROR {engine} stand-in: no config.json in {model}")
        sys.exit(1)
    time.sleep(0.5)
    # Engines start worker processes (one per GPU); they must end with the server.
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    _log(f"INFO {engine} stand-in: worker pid {worker.pid}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with OpenAIServer(model=name, reply=REPLY, port=port):
        _log(f"INFO {engine} stand-in: serving on port {port}")
        stop.wait()
    _log(f"INFO {engine} stand-in: stopped")


def install(folder: Path) -> tuple[Path, Path]:
    """Fake engine packages under ``folder``: returns (the folder to put on PYTHONPATH and
    sys.path, the folder of console scripts to put on PATH)."""
    packages, scripts = folder / "site", folder / "bin"
    run = "from tests.stand_in_engine import main\n\nmain({engine!r})\n"
    files = {
        "vllm/__init__.py": "",
        "vllm/entrypoints/__init__.py": "",
        "vllm/entrypoints/openai/__init__.py": "",
        "vllm/entrypoints/openai/api_server.py": run.format(engine="vllm"),
        "lmdeploy/__init__.py": "",
        "sglang/__init__.py": "",
        "sglang/launch_server.py": run.format(engine="sglang"),
    }
    for name, text in files.items():
        (packages / name).parent.mkdir(parents=True, exist_ok=True)
        (packages / name).write_text(text)
    scripts.mkdir(parents=True, exist_ok=True)
    script = scripts / "lmdeploy"
    script.write_text(
        f"#!{sys.executable}\nimport sys\nsys.path[:0] = [{str(ROOT)!r}]\n" + run.format(engine="lmdeploy")
    )
    script.chmod(0o755)
    return packages, scripts


def put_on_paths(folder: Path, monkeypatch) -> None:
    """Make the stand-ins the engines installed beside the app, for this test."""
    packages, scripts = install(folder)
    monkeypatch.syspath_prepend(str(packages))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(packages), str(ROOT)]))
    monkeypatch.setenv("PATH", os.pathsep.join([str(scripts), os.environ["PATH"]]))
