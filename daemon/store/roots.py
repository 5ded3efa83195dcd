"""Paths in a shared store: relative to a named root (input, output...), since each machine mounts it elsewhere."""

from __future__ import annotations


class RootMap:
    """Turns this machine's absolute path texts into stored 'root:relative' texts and back."""

    def __init__(self, roots: dict[str, str]) -> None:
        # The longest root first: a processed folder inside the output folder is named as itself.
        self._roots = sorted(((name, root.rstrip("/") or "/") for name, root in roots.items()),
                             key=lambda item: -len(item[1]))
        self._by_name = dict(self._roots)

    def stored(self, path: str) -> str:
        """`path` relative to the first root holding it ('input:a/b.jpg'); absolute when none does."""
        for name, root in self._roots:
            if path.startswith(root + "/"):
                return f"{name}:{path[len(root) + 1:]}"
        return path

    def absolute(self, stored: str) -> str:
        """This machine's path for a stored text (absolute texts pass unchanged)."""
        if stored.startswith("/"):
            return stored
        name, sep, rest = stored.partition(":")
        root = self._by_name.get(name)
        if not sep or root is None:
            return stored
        return f"{root}/{rest}"
