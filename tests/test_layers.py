"""The layers import downwards only: no module imports a layer above its own or the package face, and no
package imports another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import wormclean

PACKAGE = Path(wormclean.__file__).parent

# Lowest first; a module may import its own layer and those before it.
LAYERS = [
    {"_version", "errors", "units", "threads", "memory", "settings", "padding", "stopping"},
    {"segment"},  # pure numpy: thresholds, regions, metrics
    {"io"},
    {"stills", "sim", "model"},
    {"data"},
    {"train", "predict"},
    {"cli"},
    {"__main__"},
]
LEVEL = {part: level for level, parts in enumerate(LAYERS) for part in parts}


def imports_of(path: Path):
    """``(line, imported module, imported names)`` of every import of wormclean in a file, nested ones too."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "wormclean":
            yield node.lineno, node.module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "wormclean":
                    yield node.lineno, alias.name, []


def test_every_package_has_a_layer():
    parts = {path.relative_to(PACKAGE).with_suffix("").parts[0] for path in PACKAGE.rglob("*.py")}
    assert parts - {"__init__"} <= set(LEVEL)


def test_imports_go_down_only():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = path.relative_to(PACKAGE).with_suffix("").parts[0]
        if own == "__init__":
            continue
        for line, module, names in imports_of(path):
            parts = module.split(".")
            other = parts[1] if len(parts) > 1 else "the package face"
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
            if other == "the package face" or LEVEL[other] > LEVEL[own]:
                wrong.append(where)
            elif other != own and any(name.startswith("_") for name in names if name != "__version__"):
                wrong.append(f"{where} (private names)")
    assert not wrong, "\n".join(wrong)
