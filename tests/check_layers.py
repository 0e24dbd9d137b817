#!/usr/bin/env python3
"""The library layering of core/README.md, checked on the includes: no library includes one it may not use, no
installed header includes a header that is not installed, no plugin source includes an internal header, and the
libraries that are not installed keep every header under internal/."""
import pathlib
import re
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[1])
# What each library (and the CLI) may include besides itself: core/README.md.
ALLOWED = {
    "sdk": set(),
    "plm": {"sdk"},
    "data": {"sdk"},
    "training": {"sdk", "plm", "data"},
    "tools": {"sdk", "plm", "data"},
    "cli": {"sdk", "plm", "data", "training", "tools"},
    "conformance": {"sdk", "plm", "data", "tools"},
}
INSTALLED = {"sdk", "plm", "data"}  # minus include/sapling/internal/
# Plugins use the installed API; the evaluation plugin, a tool in plugin form, also the tools (statistics, data by
# name). Plugin tests are white-box tests and may include anything.
PLUGIN_EXTRA = {"evaluation": {"tools"}}
INCLUDE = re.compile(r'^\s*#\s*include\s+"(sapling/[A-Za-z0-9_/]+\.hpp)"', re.M)


def headers():
    """'sapling/x.hpp' -> (library, internal?) for every header under core/*/include."""
    out = {}
    for lib in ALLOWED:
        base = ROOT / "core" / lib / "include"
        for path in base.rglob("*.hpp") if base.is_dir() else []:
            name = path.relative_to(base).as_posix()
            if name in out:
                yield_error(f"{name} exists in core/{out[name][0]} and core/{lib}")
            out[name] = (lib, "/internal/" in "/" + name)
            if lib not in INSTALLED and not out[name][1]:
                yield_error(f"core/{lib}/include/{name}: core/{lib} is not installed, so its headers belong in internal/")
    return out


ERRORS = []


def yield_error(text):
    ERRORS.append(text)


def check():
    known = headers()
    checked = 0
    for lib in ALLOWED:
        for path in sorted((ROOT / "core" / lib).rglob("*.[ch]pp")):
            rel = path.relative_to(ROOT).as_posix()
            installed_header = lib in INSTALLED and "/include/sapling/" in rel and "/internal/" not in rel
            for name in INCLUDE.findall(path.read_text()):
                checked += 1
                if name not in known:
                    yield_error(f"{rel}: includes {name}, which no core library has")
                    continue
                target, internal = known[name]
                if target != lib and target not in ALLOWED[lib]:
                    yield_error(f"{rel}: core/{lib} includes {name} of core/{target}, a library it may not use")
                if installed_header and (internal or target not in INSTALLED):
                    yield_error(f"{rel}: an installed header includes {name}, which is not installed")
    for path in sorted((ROOT / "plugins").rglob("*.[ch]pp")):
        rel = path.relative_to(ROOT).as_posix()
        plugin = rel.split("/")[1]
        if "/tests/" in rel:
            continue
        may = INSTALLED | PLUGIN_EXTRA.get(plugin, set())
        for name in INCLUDE.findall(path.read_text()):
            checked += 1
            if name not in known:
                continue  # the plugin's own header
            target, internal = known[name]
            if target not in may or (internal and target in INSTALLED):
                yield_error(f"{rel}: the {plugin} plugin includes {name} (core/{target}), which is not plugin API")
    return checked


def main():
    checked = check()
    for error in ERRORS:
        print("layering:", error)
    print(f"layering: {checked} includes checked, {len(ERRORS)} violations")
    return 1 if ERRORS else 0


if __name__ == "__main__":
    sys.exit(main())
