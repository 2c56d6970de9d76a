"""Where datum work runs: threads in this process, or a Dask cluster.

An :class:`Executor` maps a function over tasks with at most ``parallelism`` running at once and
yields results as they complete. ``cancel()`` stops the maps in progress from starting more
tasks (running ones finish, or are stopped by the caller through its own ``threading.Event``);
maps started afterwards run normally. Dask is imported only when a Dask executor is made.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import islice
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from haathi.errors import FailedPrecondition, InvalidArgument

T = TypeVar("T")
R = TypeVar("R")

DASK_CONNECT_TIMEOUT = 10.0
"""Seconds to wait for the Dask scheduler before giving up."""

DASK_DEFAULT_PORT = 8786


class Executor(Protocol):
    """Runs datum work; see the module docstring."""

    name: str

    def map(self, fn: Callable[[T], R], tasks: Sequence[T], *, parallelism: int) -> Iterator[R]:
        """``fn(task)`` for each task, results in completion order; ``fn``'s errors re-raised."""
        ...

    def cancel(self) -> None:
        """Stop the maps in progress from starting more tasks."""
        ...

    def close(self) -> None:
        """Release the executor's resources."""
        ...


class _Cancellation:
    """Generations of ``cancel()``: a map stops when the generation it started in has ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0

    def current(self) -> int:
        with self._lock:
            return self._generation

    def cancel(self) -> None:
        with self._lock:
            self._generation += 1

    def cancelled(self, generation: int) -> bool:
        with self._lock:
            return self._generation != generation


def _check_parallelism(parallelism: int) -> None:
    if parallelism < 1:
        raise InvalidArgument(f"parallelism must be at least 1, not {parallelism}")


class LocalExecutor:
    """Threads in this process: each datum runs its command as its own OS process."""

    name = "local"

    def __init__(self) -> None:
        self._cancellation = _Cancellation()

    def map(self, fn: Callable[[T], R], tasks: Sequence[T], *, parallelism: int) -> Iterator[R]:
        """``fn(task)`` for each task on at most ``parallelism`` threads, in completion order."""
        _check_parallelism(parallelism)
        generation = self._cancellation.current()
        return self._map(fn, tasks, parallelism, generation)

    def _map(
        self, fn: Callable[[T], R], tasks: Sequence[T], parallelism: int, generation: int
    ) -> Iterator[R]:
        if not tasks:
            return
        pool = ThreadPoolExecutor(
            max_workers=min(parallelism, len(tasks)), thread_name_prefix="haathi-datum"
        )
        todo = iter(tasks)
        running: set[Future[R]]
        try:
            running = {pool.submit(fn, task) for task in islice(todo, parallelism)}
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()  # re-raises fn's exception
                    if not self._cancellation.cancelled(generation):
                        running.update(pool.submit(fn, task) for task in islice(todo, 1))
                    yield result
        finally:
            # On an error or an abandoned iterator, running tasks finish in the background.
            pool.shutdown(wait=False, cancel_futures=True)

    def cancel(self) -> None:
        """Stop the maps in progress from starting more tasks."""
        self._cancellation.cancel()

    def close(self) -> None:
        """Nothing to release: each map owns its threads."""


class DaskExecutor:
    """Tasks on a running Dask cluster (``dask scheduler`` + ``dask worker``s).

    ``fn`` and the tasks are pickled: make ``fn`` a top-level function importable on the workers.
    """

    def __init__(self, address: str, *, connect_timeout: float = DASK_CONNECT_TIMEOUT) -> None:
        """Connect to the scheduler at ``tcp://host:port``."""
        distributed = _distributed()
        host_port = address.split("://", 1)[-1]
        self.name = f"dask://{host_port}"
        self.address = f"tcp://{host_port}"
        self._cancellation = _Cancellation()
        try:
            self._client: Any = distributed.Client(
                self.address, timeout=connect_timeout, set_as_default=False
            )
        except (OSError, TimeoutError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise FailedPrecondition(
                f"cannot reach the dask scheduler at {self.address}: {reason}",
                address=self.address,
            ) from exc

    def map(self, fn: Callable[[T], R], tasks: Sequence[T], *, parallelism: int) -> Iterator[R]:
        """``fn(task)`` for each task on the cluster, at most ``parallelism`` in flight."""
        _check_parallelism(parallelism)
        generation = self._cancellation.current()
        return self._map(fn, tasks, parallelism, generation)

    def _map(
        self, fn: Callable[[T], R], tasks: Sequence[T], parallelism: int, generation: int
    ) -> Iterator[R]:
        if not tasks:
            return
        client = self._client
        todo = iter(tasks)
        first = [client.submit(fn, task, pure=False) for task in islice(todo, parallelism)]
        in_flight = set(first)
        completed = _distributed().as_completed(first, loop=client.loop)
        try:
            for future in completed:
                in_flight.discard(future)
                result = future.result()  # re-raises fn's exception
                if not self._cancellation.cancelled(generation):
                    for task in islice(todo, 1):
                        new = client.submit(fn, task, pure=False)
                        in_flight.add(new)
                        completed.add(new)
                future.release()
                yield result
        finally:
            if in_flight:
                client.cancel(list(in_flight))

    def cancel(self) -> None:
        """Stop the maps in progress from starting more tasks."""
        self._cancellation.cancel()

    def close(self) -> None:
        """Close the connection to the scheduler (the cluster keeps running)."""
        self._client.close()


def _distributed() -> Any:
    """The ``distributed`` module (untyped here), imported on first use."""
    return importlib.import_module("distributed")


def make_executor(url: str | None) -> Executor:
    """``None``/``local``: :class:`LocalExecutor`; ``dask://host:port`` or ``tcp://…``: Dask."""
    if url is None or url == "local":
        return LocalExecutor()
    parts = urlsplit(url)
    if parts.scheme not in ("dask", "tcp") or not parts.hostname or parts.path not in ("", "/"):
        raise InvalidArgument(
            f"bad executor {url!r} (expected local, dask://host:port or tcp://host:port)",
            executor=url,
        )
    try:
        port = parts.port or DASK_DEFAULT_PORT
    except ValueError as exc:
        raise InvalidArgument(f"bad executor {url!r}: {exc}", executor=url) from exc
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return DaskExecutor(f"tcp://{host}:{port}")
