"""The meshward policy language.

Data flows through one module per stage::

    parser (text -> nodes) -> checker (nodes -> model) -> compiler (model -> tables)
    -> evaluator (tables + request -> decision)

``reference`` decides from the model rule by rule (and explains); ``bundle`` stores a
checked policy set; ``loader`` reads files.

A wheel built where a C compiler is present ships the decision hot path (the evaluator
and what it calls) compiled by mypyc from these same sources; :func:`hot_path_compiled`
says which one runs.
"""

from importlib.machinery import EXTENSION_SUFFIXES

from . import evaluator as _evaluator
from .bundle import BundleError
from .compiler import compile_policy
from .decision import Decision
from .diagnostics import Diagnostic, PolicyError
from .evaluator import evaluate
from .loader import LoadedPolicy, load_paths, load_texts
from .reference import explain, reference_decide
from .request import Request, RequestError
from .tables import CompiledPolicy


def hot_path_compiled() -> bool:
    """True when decisions run in compiled extension modules, False when they run as
    Python source (an editable install, or a wheel built without a C compiler)."""
    return (_evaluator.__file__ or "").endswith(tuple(EXTENSION_SUFFIXES))


__all__ = [
    "BundleError",
    "CompiledPolicy",
    "Decision",
    "Diagnostic",
    "LoadedPolicy",
    "PolicyError",
    "Request",
    "RequestError",
    "compile_policy",
    "evaluate",
    "explain",
    "hot_path_compiled",
    "load_paths",
    "load_texts",
    "reference_decide",
]
