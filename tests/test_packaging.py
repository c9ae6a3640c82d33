"""The installed distribution exposes only `meshward.*` and ships its grammar."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sysconfig


def test_no_bare_top_level_packages_are_installed():
    # The installed distribution, not a build's egg-info lying in the source tree.
    purelib = sysconfig.get_paths()["purelib"]
    (dist,) = importlib.metadata.distributions(name="meshward", path=[purelib])
    top = set()
    for f in dist.files or ():
        parts = f.parts
        if (
            parts
            and not parts[0].endswith((".dist-info", ".pth"))
            and parts[0] not in ("..", "__pycache__")
            and not parts[0].startswith("__editable__")
        ):
            top.add(parts[0].removesuffix(".py"))
    assert top <= {"meshward"}, top
    for name in ("policy", "ca", "grammar"):
        spec = importlib.util.find_spec(name)
        assert spec is None or "meshward" not in str(spec.origin or ""), name


def test_grammar_ships_as_package_data():
    from importlib.resources import files

    assert (files("meshward.grammar") / "meshward.lark").read_text().startswith("//")


# What setup.py compiles (HOT_PATH): listed again here, so that a module dropped from the
# build shows up as a failure rather than as a slower check.
COMPILED = [
    *(
        f"meshward.policy.{m}"
        for m in ("evaluator", "tables", "conditions", "decision", "identity", "paths", "request")
    ),
    *(
        f"meshward.authz.{m}"
        for m in (
            "core",
            "http_app",
            "decision_log",
            "decision_stats",
            "destination",
            "identity",
            "xfcc",
            "tokens",
            "grpc_messages",
        )
    ),
]


def test_the_hot_path_runs_as_built():
    """The source tree runs the evaluator and the ext_authz check as Python; the wheel
    `./dev test` builds compiles both wherever a C compiler is present, so the suite runs
    once against each."""
    import os
    import shutil
    from importlib import import_module
    from importlib.machinery import EXTENSION_SUFFIXES

    from meshward.policy import hot_path_compiled

    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    can_compile = shutil.which(compiler) is not None and os.path.exists(
        os.path.join(sysconfig.get_paths()["include"], "Python.h")
    )
    expected = bool(os.environ.get("MESHWARD_WHEEL_CHECK")) and can_compile
    assert hot_path_compiled() is expected
    for name in COMPILED:
        module = import_module(name)
        assert (module.__file__ or "").endswith(tuple(EXTENSION_SUFFIXES)) is expected, name
