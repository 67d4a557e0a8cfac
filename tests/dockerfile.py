"""Just enough of a Dockerfile parser for the tests: instructions per build stage, with line
continuations joined and comments dropped. hadolint (run by a test) checks the syntax."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]

    def last(self, instruction: str) -> str:
        found = self.all(instruction)
        assert found, f"the stage from {self.base} has no {instruction}"
        return found[-1]

    def exec_form(self, instruction: str) -> list[str]:
        """An ENTRYPOINT, CMD or HEALTHCHECK CMD in exec (JSON) form; fails on shell form."""
        args = self.last(instruction)
        if instruction == "HEALTHCHECK":
            args = args[args.index("CMD ") + len("CMD ") :]
        value = json.loads(args)
        assert isinstance(value, list), f"{instruction} is not in exec form: {args}"
        return [str(item) for item in value]

    def env(self) -> dict[str, str]:
        """Every ENV of the stage, in KEY=VALUE form, later ones winning."""
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for pair in shlex.split(args):
                key, sep, value = pair.partition("=")
                assert sep, f"ENV {args}: write ENV KEY=VALUE"
                values[key] = value
        return values

    def labels(self) -> dict[str, str]:
        return dict(pair.partition("=")[::2] for a in self.all("LABEL") for pair in shlex.split(a))

    def args(self) -> dict[str, str]:
        return dict(a.partition("=")[::2] for a in self.all("ARG"))


def stages(path: Path) -> list[Stage]:
    """The build stages of the Dockerfile at ``path``, in order."""
    result: list[Stage] = []
    for line in _logical_lines(path.read_text(encoding="utf-8")):
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), args.strip()
        if instruction == "FROM":
            base, _, name = args.partition(" AS ")
            result.append(Stage(base.strip(), name.strip() or None))
        elif result:
            result[-1].instructions.append((instruction, args))
    return result


def _logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            lines.append(current.strip())
        current = ""
    return lines
