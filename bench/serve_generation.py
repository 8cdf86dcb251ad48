"""/v1/query through the live server, paired with `model.generate` called directly on the same prompts.

For each question, in A-B-A order so that a drifting machine load hits both sides alike:
  A  POST /v1/query {question, max_tokens}: the response's `timings` split retrieval, prompt, queue and
     generation, `usage` gives the tokens; the server is idle otherwise;
  B  the same messages rebuilt from the response's sources with core.prompt.build_answer_messages (what the
     server sent: the sources it showed, named by core.prompt.origin_of) go to the direct baseline, a child
     process (bench/serve_direct.py) that calls `model.generate`; the server is idle meanwhile;
  A  the same question to the server again.
Server tokens/s = completion tokens / `timings.generation` (mean of the two A runs); direct tokens/s =
completion tokens / the `model.generate` seconds. Prompt and completion token counts are compared, so a
mismatch in the rebuilt prompt shows in the output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from almanac.core.prompt import build_answer_messages, extract_citations, origin_of

BENCH = Path(__file__).resolve().parent


class DirectBaseline:
    """bench/serve_direct.py in a child process, one JSON line per request."""

    def __init__(self, model_dir: Path, env: dict[str, str]) -> None:
        self.model_dir, self.env = model_dir, env
        self.process: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> DirectBaseline:
        command = [sys.executable, str(BENCH / "serve_direct.py"), str(self.model_dir)]
        self.process = subprocess.Popen(
            command, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.info = self._read()
        return self

    def _read(self) -> dict[str, Any]:
        assert self.process is not None and self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the direct baseline exited with {self.process.wait()}")
        return json.loads(line)

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int) -> dict[str, Any]:
        """One greedy generation in the child; its timing and token counts."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(json.dumps({"messages": messages, "max_new_tokens": max_new_tokens}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(60)


def server_messages(question: str, sources: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The messages the server built for this answer, from the sources it returned (in prompt order)."""
    pairs = [(origin_of(s["source"], s["locator"]), s["text"]) for s in sources]
    return [{"role": m.role, "content": m.content} for m in build_answer_messages(question.strip(), pairs)]


def _ask(client: httpx.Client, question: str, max_tokens: int) -> dict[str, Any]:
    started = time.perf_counter()
    response = client.post("/v1/query", json={"question": question, "max_tokens": max_tokens})
    response.raise_for_status()
    return {**response.json(), "wall_s": time.perf_counter() - started}


def _pair(client: httpx.Client, direct: DirectBaseline, question: str, max_tokens: int) -> dict[str, Any]:
    """A-B-A for one question."""
    first = _ask(client, question, max_tokens)
    if not first["sources"]:
        return {"question": question, "skipped": "no sources retrieved"}
    base = direct.generate(server_messages(question, first["sources"]), max_tokens)
    second = _ask(client, question, max_tokens)
    runs = [first, second]
    generation = sum(r["timings"]["generation"] for r in runs) / 2
    tokens = first["usage"]["completion_tokens"]
    return {
        "question": question,
        "wall_s": sum(r["wall_s"] for r in runs) / 2,
        "timings": {k: sum(r["timings"][k] for r in runs) / 2 for k in first["timings"]},
        "prompt_tokens": first["usage"]["prompt_tokens"],
        "completion_tokens": tokens,
        "server_tokens_per_s": tokens / generation,
        "direct_seconds": base["seconds"],
        "direct_completion_tokens": base["completion_tokens"],
        "direct_tokens_per_s": base["completion_tokens"] / base["seconds"],
        "same_prompt_tokens": base["prompt_tokens"] == first["usage"]["prompt_tokens"],
        "same_completion": base["completion_tokens"] == tokens
        and extract_citations(base["text"].strip(), len(first["sources"]))[0] == first["answer"],
        "answer": first["answer"],
    }


def query_pass(
    url: str, questions: list[str], max_tokens: int, model_dir: Path, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Warm both sides once, then the A-B-A pairs; per-question rows and the totals. `extra_env` is what
    the server got too (e.g. OMP_NUM_THREADS), so both sides run with the same threads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALMANAC_")} | dict(extra_env or {})
    with httpx.Client(base_url=url, timeout=600) as client, DirectBaseline(model_dir, env) as direct:
        _ask(client, questions[0], max_tokens)  # the server's first generation pays one-off costs
        load_before = os.getloadavg()[0]
        rows = [_pair(client, direct, q, max_tokens) for q in questions]
        threads = direct.info.get("threads")
    done = [r for r in rows if "skipped" not in r]
    tokens = sum(r["completion_tokens"] for r in done)
    server_s = sum(r["completion_tokens"] / r["server_tokens_per_s"] for r in done)
    direct_tokens, direct_s = (
        sum(r["direct_completion_tokens"] for r in done),
        sum(r["direct_seconds"] for r in done),
    )
    server_rate = tokens / server_s if server_s else 0.0
    direct_rate = direct_tokens / direct_s if direct_s else 0.0
    return {
        "max_tokens": max_tokens,
        "questions": rows,
        "direct_threads": threads,
        "server_tokens_per_s": server_rate,
        "direct_tokens_per_s": direct_rate,
        "ratio": server_rate / direct_rate if direct_rate else 0.0,
        "load_avg_1m": [load_before, os.getloadavg()[0]],
    }
