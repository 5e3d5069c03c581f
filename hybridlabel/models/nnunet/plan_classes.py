"""The classes a plans file names, resolved safely, and the network they describe checked
against a checkpoint before anything is allocated.

nnU-Net builds its network with `pydoc.locate(name)` for the network class and every
layer argument in `_kw_requires_import`, then calls the class with the plans' keyword
arguments. `pydoc.locate` follows attributes through a module's own imports, so a name
that merely starts with an allowed package can reach anything
(`dynamic_network_architectures.architectures.unet.torch.hub.load` is `torch.hub.load`;
`torch.nn.modules.conv.F` is `torch.nn.functional`). A string check cannot see that: here
each name is walked one attribute at a time, every step but the last must be a module of
the allowed package reached under its own name, and the last must be a `torch.nn.Module`
subclass defined inside the allowed package. Only then may nnU-Net locate it (which then
imports nothing outside that package).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from types import ModuleType

NETWORK_PACKAGE = "dynamic_network_architectures.architectures"
LAYER_PACKAGE = "torch.nn"
# where a layer class must be defined: torch's layer modules, not torch.nn.parallel & co.
LAYER_DEFINED_IN = "torch.nn.modules"
DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
# nnU-Net passes these itself (get_network_from_plans); plans giving them would clash
PASSED_BY_NNUNET = ("input_channels", "num_classes", "deep_supervision")
# nnU-Net's deepest plans have ~8 stages: a longer list only makes the build slow and big
MAX_LIST = 32


class PlansClassError(ValueError):
    """A plans file names something that is not an allowed class; the message says what."""


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def resolve_class(name: object, package: str, defined_in: str | None = None):
    """The class `name` denotes, reached without leaving `package`; PlansClassError otherwise."""
    import torch

    defined_in = defined_in or package
    if not isinstance(name, str) or not DOTTED.fullmatch(name) or not _inside(name, package):
        raise PlansClassError(f"{name!r} is not a dotted name inside {package}")
    parts = name.split(".")
    depth = len(package.split("."))
    obj: object = importlib.import_module(package)
    for k in range(depth, len(parts)):
        here, last = ".".join(parts[: k + 1]), k == len(parts) - 1
        if isinstance(obj, ModuleType) and hasattr(obj, "__path__") and importlib.util.find_spec(here):
            obj = importlib.import_module(here)  # a submodule of the allowed package itself
        elif isinstance(obj, ModuleType) and hasattr(obj, parts[k]):
            obj = getattr(obj, parts[k])
        else:
            raise PlansClassError(f"{name!r} does not exist ({here} not found)")
        if not last and not (isinstance(obj, ModuleType) and obj.__name__ == here):
            what = f"module {obj.__name__}" if isinstance(obj, ModuleType) else type(obj).__name__
            raise PlansClassError(f"{name!r} leaves {package} at {here} (which is {what})")
    if not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
        what = "a class" if isinstance(obj, type) else f"a {type(obj).__name__}"
        raise PlansClassError(f"{name!r} is {what}, not a torch.nn.Module class")
    if not _inside(obj.__module__, defined_in):
        raise PlansClassError(f"{name!r} is defined in {obj.__module__}, not inside {defined_in}")
    return obj


def _unknown_arguments(cls, kwargs: dict) -> list[str]:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return [k for k in kwargs if k in PASSED_BY_NNUNET]
    return sorted(k for k in kwargs if k not in params or k in PASSED_BY_NNUNET or k == "self")


def architecture_problem(arch_class_name: object, arch_kwargs: object, req_import: object) -> str | None:
    """Why nnU-Net must not build this architecture, or None: every class it would import
    resolved and allowed, every argument one the network's constructor takes."""
    if not isinstance(arch_kwargs, dict) or not isinstance(req_import, (list, tuple)):
        return "its architecture arguments are malformed"
    try:
        network = resolve_class(arch_class_name, NETWORK_PACKAGE)
    except PlansClassError as exc:
        return f"network class refused: {exc}; only dynamic_network_architectures classes are loaded"
    for key in req_import:
        value = arch_kwargs.get(key) if isinstance(key, str) else None
        if value is None:
            continue
        try:
            resolve_class(value, LAYER_PACKAGE, LAYER_DEFINED_IN)
        except PlansClassError as exc:
            return f"argument {key!r} refused: {exc}; only torch.nn layer classes are loaded"
    if long := [k for k, v in arch_kwargs.items() if isinstance(v, (list, tuple)) and len(v) > MAX_LIST]:
        return f"argument {long[0]!r} lists {len(arch_kwargs[long[0]])} entries (at most {MAX_LIST})"
    if unknown := _unknown_arguments(network, arch_kwargs):
        return f"argument(s) {', '.join(unknown)} are not parameters of {network.__name__}"
    return None


def shape_problem(expected: dict, weights: dict) -> str | None:
    """Why `weights` cannot be the state of a network whose state has `expected` shapes."""
    missing = [k for k in expected if k not in weights]
    extra = [k for k in weights if k not in expected]
    if missing or extra:
        return (
            f"the weights do not fit the network the plans describe ({len(missing)} tensor(s) missing, "
            f"e.g. {missing[:1]}; {len(extra)} unexpected, e.g. {extra[:1]})"
        )
    for key, shape in expected.items():
        have = tuple(getattr(weights[key], "shape", ()))
        if have != tuple(shape):
            return (
                f"the weights do not fit the network the plans describe ({key}: {have} in the checkpoint, "
                f"{tuple(shape)} in the plans)"
            )
    return None


def network_state_shapes(plans: dict, dataset_json: dict, configuration: str) -> dict[str, tuple[int, ...]]:
    """The state-dict shapes of the network, built on the meta device (no memory allocated)."""
    import torch

    from hybridlabel.models.nnunet.network import build_network

    with torch.device("meta"):
        network = build_network(plans, dataset_json, configuration, allow_init=False)
    return {k: tuple(v.shape) for k, v in network.state_dict().items()}
