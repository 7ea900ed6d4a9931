"""Seeds shipped with the package, usable by name (``--seed example``, ``@pytest.mark.dcp_seed("example")``).

Kept free of heavy imports: the pytest plugin resolves seed names with it before any emulator exists.
"""

from __future__ import annotations

import os
import pathlib

SEEDS_DIR = pathlib.Path(__file__).resolve().parent


def builtin_seed_names() -> list[str]:
    """The names of the seeds shipped with the package (file names without ``.yaml``)."""
    return sorted(p.stem for p in SEEDS_DIR.glob("*.yaml"))


def builtin_seed(name: str | os.PathLike) -> pathlib.Path | None:
    """The file of the built-in seed ``name``; None when ``name`` is not one. A bare name has no path
    separator and no .yaml/.yml/.json suffix, so a file path never reads as one."""
    text = os.fspath(name)
    if (not text or "/" in text or os.sep in text or text.startswith(".")
            or pathlib.PurePath(text).suffix in (".yaml", ".yml", ".json")):
        return None
    path = SEEDS_DIR / f"{text}.yaml"
    return path if path.is_file() else None


def resolve_seed(spec: str | os.PathLike, base: str | os.PathLike | None = None) -> pathlib.Path:
    """A seed file from a path (absolute, else relative to ``base`` and then the working directory) or a
    built-in name; an existing file wins over a built-in of the same name. FileNotFoundError says what
    was tried and which names are built in."""
    path = pathlib.Path(spec)
    candidates = [path] if path.is_absolute() else [pathlib.Path(base) / path] if base else []
    if not path.is_absolute():
        candidates.append(pathlib.Path.cwd() / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    builtin = builtin_seed(str(spec))
    if builtin is not None:
        return builtin
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"seed {str(spec)!r} is neither a file (tried {tried}) nor a built-in seed "
                            f"(built in: {', '.join(builtin_seed_names())})")
