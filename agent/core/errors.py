"""Errors raised at binaura's boundaries. Library code raises; only the CLI exits."""

from __future__ import annotations


class BinauraError(Exception):
    """Base class: a message a user can act on."""


class ConfigError(BinauraError):
    """One or more configuration values are invalid. Collects every problem."""

    def __init__(self, problems: list[str], where: str = "config"):
        self.problems = list(problems)
        self.where = where
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid {where} ({len(self.problems)} problem(s)):\n{lines}")


class DatasetError(BinauraError):
    """A dataset file or line does not follow the dataset contract."""

    def __init__(self, path: str, message: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class AudioFormatError(BinauraError):
    """Audio that does not meet the audio contract (channels, rate, format)."""


def check_numbers(obj, names, ok, rule: str, problems: list[str]) -> None:
    """Append to `problems` a line for each field of `obj` in `names` that is not a number
    (bools are not) satisfying `ok`; `rule` says what was expected ("> 0", "in (0, 1]")."""
    for name in names:
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not ok(v):
            problems.append(f"{name} must be {rule}, got {v!r}")


def check_known_keys(cls, d: dict, what: str) -> None:
    """Raise ConfigError when d has keys that are not fields of the dataclass cls."""
    import dataclasses  # noqa: PLC0415

    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError([f"unknown key(s) {unknown}; allowed: {sorted(names)}"], what)
