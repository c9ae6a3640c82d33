"""Build hook: compile the hot path (the decision and the ext_authz check around it) with
mypyc when building a wheel.

The modules in ``HOT_PATH`` are ordinary, strictly typed Python (the build type-checks
them with ``--strict`` before compiling). A wheel build compiles them to C extensions;
their sources ship beside the extensions and are what runs wherever the extensions are
absent, with the same results (the whole test suite runs against both). Editable
installs stay pure Python so that an edited source takes effect at once, and
``MESHWARD_PURE=1`` builds a pure wheel. Where the extensions cannot be built (no C
compiler or no Python headers), the wheel holds only the sources, though it is still
tagged for the platform it was built on.

Everything else is declared in pyproject.toml.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

# Every check runs through these, and only these: the decision (policy/evaluator.py and
# what it calls) and the ext_authz check from request in to response out. Compiled, they
# pay no interpreter overhead per bytecode. Settings, reload, metrics export, the admin
# app (FastAPI reads its routes' signatures) and the gRPC servicer and server (grpcio's
# generated base class cannot be compiled; its message mapping, grpc_messages, is) stay
# Python.
HOT_PATH = {
    "policy": ("evaluator", "tables", "conditions", "decision", "identity", "paths", "request"),
    "authz": (
        "core",
        "http_app",
        "decision_log",
        "decision_stats",
        "destination",
        "identity",
        "xfcc",
        "tokens",
        "grpc_messages",
    ),
}
# Where each package's sources live in this tree (pyproject's package-dir).
SOURCES = {"policy": Path("policy"), "authz": Path("meshward", "authz")}
# Compiled, the hot path's annotations are checked at run time, so it is type-checked
# strictly twice: by the wheel build, whose environment holds only the build requirements
# (the libraries the check path calls, pyjwt and the like, are Any there; modules that are
# not compiled are read for their types but not checked), and by `./dev test` with the
# rest of the package, against the installed libraries (`typecheck_package`).
MYPY_CONFIG = """\
[mypy]
strict = True
ignore_missing_imports = True
follow_imports = silent
"""


def _building_a_wheel() -> bool:
    commands = set(sys.argv[1:])
    return "bdist_wheel" in commands and "editable_wheel" not in commands


def stage_hot_path() -> tuple[Path, list[str]]:
    """Copy the hot path's packages under the names they are installed as (mypyc names a
    module after its path, and this tree maps `meshward.policy` to `policy/`), beside a
    mypy config; returns the config and the modules to compile."""
    stage = Path("build", "mypyc", "src")
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "meshward").mkdir(parents=True)
    (stage / "meshward" / "__init__.py").write_text("")
    hot: list[str] = []
    for name, modules in HOT_PATH.items():
        package = stage / "meshward" / name
        package.mkdir()
        # An empty package __init__: mypy then follows only what the hot path imports.
        (package / "__init__.py").write_text("")
        for source in SOURCES[name].glob("*.py"):
            if source.name != "__init__.py":
                shutil.copyfile(source, package / source.name)
        hot += [str(package / f"{module}.py") for module in modules]
    config = stage / "mypy.ini"
    config.write_text(MYPY_CONFIG)
    return config, hot


# The whole package, strictly: pydantic's plugin reads the settings models as pydantic
# builds them; libraries without type information (grpc, the generated protos) are Any.
PACKAGE_MYPY_CONFIG = """\
[mypy]
strict = True
ignore_missing_imports = True
plugins = pydantic.mypy
"""


def package_folders() -> dict[str, str]:
    """pyproject's package-dir: each installed package and the folder it comes from."""
    with open("pyproject.toml", "rb") as f:
        folders: dict[str, str] = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return folders


def stage_package() -> Path:
    """Copy the package as it installs (`policy/` becomes `meshward/policy`, and so on)
    under build/typecheck, beside a mypy config; returns the staging folder."""
    stage = Path("build", "typecheck")
    shutil.rmtree(stage, ignore_errors=True)
    skip = shutil.ignore_patterns("__pycache__", "*.so")
    for name, source in sorted(package_folders().items()):  # outer packages first
        shutil.copytree(source, stage.joinpath(*name.split(".")), ignore=skip, dirs_exist_ok=True)
    (stage / "mypy.ini").write_text(PACKAGE_MYPY_CONFIG)
    return stage


def typecheck_package() -> int:
    """mypy --strict on the whole staged package against the installed libraries, its
    findings named by their source files; the exit status (``./dev test`` runs this)."""
    from mypy import api

    stage = stage_package()
    out, err, status = api.run(["--config-file", str(stage / "mypy.ini"), str(stage / "meshward")])
    for name, source in sorted(package_folders().items(), reverse=True):  # inner first
        out = out.replace(f"{stage.joinpath(*name.split('.'))}/", f"{source}/")
    print(out, end="")
    print(err, end="", file=sys.stderr)
    return status


def _hot_path_extensions() -> list[object]:
    try:
        from mypyc.build import mypycify
    except ImportError:  # a build without its build requirements: stay pure
        return []
    config, hot = stage_hot_path()
    extensions = mypycify(
        ["--config-file", str(config), *hot],
        only_compile_paths=hot,
        target_dir=str(Path("build", "mypyc", "c")),
        group_name="meshward.hot_path",  # one shared library, inside the package
    )
    return list(extensions)


class _AllOrNothing(build_ext):
    """Build the hot path's extensions together or not at all. Each compiled module is a
    stub that loads one shared library: stubs without it would shadow the sources and fail
    to import, so if any extension fails to build (no C compiler, no Python headers, a
    compiler warning under mypyc's -Werror), none ships and the sources serve."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # setuptools' compile, link and platform errors
            print(f"meshward: not compiling the hot path ({exc}); the wheel runs the sources")
            for extension in self.extensions:
                built = Path(self.get_ext_fullpath(extension.name))
                built.unlink(missing_ok=True)
            self.extensions = []


# setuptools runs this file as __main__; `./dev test` imports it for typecheck_package.
if __name__ == "__main__":
    extensions: list[object] = []
    if _building_a_wheel():
        # A wheel packs whatever build/lib holds: start it empty, so that no extension of an
        # earlier build (or no longer listed) ships in this one.
        for stale in Path("build").glob("lib*"):
            shutil.rmtree(stale)
        if os.environ.get("MESHWARD_PURE") != "1":
            extensions = _hot_path_extensions()
    setup(ext_modules=extensions, cmdclass={"build_ext": _AllOrNothing})
