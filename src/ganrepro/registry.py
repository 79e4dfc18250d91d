"""Name -> object registries, so that params.yaml can name models, losses, solvers and metrics.

    MODELS = Registry("model")
    @MODELS.register("dcgan")
    class DCGAN: ...
    MODELS.get("dcgan")     # -> DCGAN
    MODELS.get("dcgna")     # UnknownNameError: unknown model 'dcgna'; valid: dcgan
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that no registry entry answers to. The message lists the valid names."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str, key: str | None = None) -> T:
        """The entry called `name`; `key` names the config key it came from, for the error."""
        if name not in self._entries:
            where = f"{key}: " if key else ""
            raise UnknownNameError(
                f"{where}unknown {self.kind} {name!r}; valid: {', '.join(sorted(self._entries))}"
            )
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
