"""The meshward policy language.

Data flows through one module per stage::

    parser (text -> nodes) -> checker (nodes -> model) -> compiler (model -> tables)
    -> evaluator (tables + request -> decision)

``reference`` decides from the model rule by rule (and explains); ``bundle`` stores a
checked policy set; ``loader`` reads files.
"""

from .bundle import BundleError
from .compiler import compile_policy
from .decision import Decision
from .diagnostics import Diagnostic, PolicyError
from .evaluator import evaluate
from .loader import LoadedPolicy, load_paths, load_texts
from .reference import explain, reference_decide
from .request import Request, RequestError
from .tables import CompiledPolicy

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
    "load_paths",
    "load_texts",
    "reference_decide",
]
