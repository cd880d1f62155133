"""One registry mechanism for everything a config names: models, loss terms, evaluators, preprocessing ops,
samplers, datasets, tasks, converters and published teachers.

    MODELS = Registry("model")
    @MODELS.register("resnet8x4")        # or MODELS.register("resnet8x4", factory)
    def ...
    MODELS.get("resnet8x5")  ->  ValueError: unknown model 'resnet8x5'; valid models: resnet110, ...

A name registered twice is an error (two modules claiming one name would otherwise shadow each other silently).
"""
from typing import Any, Callable, Iterator


class Registry:
    """Names -> objects of one kind; `get` of an unknown name raises ValueError listing the registered names."""

    def __init__(self, kind: str, plural: str | None = None):
        self.kind, self.plural = kind, plural or f"{kind}s"
        self._entries: dict[str, Any] = {}

    def register(self, name: str, obj: Any = None) -> Any:
        """Registers `obj` under `name`; without `obj`, returns a decorator that registers what it decorates."""
        if obj is None:
            return lambda decorated: self.register(name, decorated)
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._entries[name] = obj
        return obj

    def get(self, name: str) -> Any:
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; valid {self.plural}: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, Any]]:
        return sorted(self._entries.items())

    def find(self, predicate: Callable[[str, Any], bool]) -> list[str]:
        """The registered names whose (name, object) satisfy `predicate`."""
        return [name for name, obj in self.items() if predicate(name, obj)]

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
