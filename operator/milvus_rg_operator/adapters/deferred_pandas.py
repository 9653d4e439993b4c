"""Keep pandas out of the operator's memory until something really uses it.

pymilvus 3.0.2 imports pandas (about 33 MB of RSS, a fifth of the operator's) as it is imported: its
ORM modules take helpers from `pandas.api.types` and name `pd.DataFrame` in annotations and isinstance
checks for the insert paths (`pymilvus/orm/types.py`, `orm/schema.py`, `orm/prepare.py`), and both of
its clients import the ORM. The operator's calls (resource groups, replicas, node listing) never reach
those paths.

`defer_pandas()` puts two stand-ins in `sys.modules` before pymilvus is imported: `pandas` and
`pandas.api.types`. They hold nothing and import the real pandas the first time anything else is
asked of them; from then on `sys.modules` holds the real modules and the stand-ins answer from them.
What pymilvus reads from them while it is imported is deferred by name:
- the functions it takes from `pandas.api.types` become forwarders that import pandas on their first
  call;
- the classes it names become deferred classes: calling one (or reading an attribute) imports pandas,
  and an isinstance check is False until pandas is imported, since no pandas object exists before.
Whatever pymilvus does with pandas still happens, with the real pandas.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

PANDAS = "pandas"
PANDAS_TYPES = "pandas.api.types"
# The classes pymilvus 3.0.2 names (DataFrame as it is imported, all three in isinstance checks) and the
# functions it takes from pandas.api.types as it is imported. Anything else read from a stand-in imports
# pandas: tests/adapters/test_deferred_pandas.py fails when a pymilvus upgrade reads another name.
DEFERRED_CLASSES = frozenset({"DataFrame", "Series", "SparseDtype"})
DEFERRED_FUNCTIONS = frozenset({"infer_dtype", "is_array_like", "is_float", "is_list_like", "is_scalar"})

_load_lock = threading.Lock()
# True from defer_pandas() until the real pandas is imported in full: another thread sees the real
# modules only once they are complete.
_deferred = False


def is_deferred() -> bool:
    """True while the stand-ins are in place and pandas has not been imported for real."""
    return _deferred


def defer_pandas() -> None:
    """Install the stand-ins, unless pandas is already imported (then there is nothing to save)."""
    global _deferred
    if PANDAS in sys.modules:
        return
    sys.modules[PANDAS] = _StandIn(PANDAS)
    sys.modules[PANDAS_TYPES] = _StandIn(PANDAS_TYPES)
    _deferred = True


def _real(name: str) -> Any:
    """The real module `name`, importing pandas first if it still is deferred."""
    global _deferred
    if _deferred:
        with _load_lock:
            if _deferred:
                for standin in (PANDAS, PANDAS_TYPES):
                    if isinstance(sys.modules.get(standin), _StandIn):
                        del sys.modules[standin]
                importlib.import_module(PANDAS_TYPES)
                _deferred = False
    return sys.modules[name]


class _StandIn(types.ModuleType):
    def __getattr__(self, attribute: str) -> Any:  # called only for what the stand-in does not hold
        if is_deferred():
            if self.__name__ == PANDAS and attribute in DEFERRED_CLASSES:
                return _deferred_class(attribute)
            if self.__name__ == PANDAS_TYPES and attribute in DEFERRED_FUNCTIONS:
                return _forwarder(attribute)
            if self.__name__ == PANDAS_TYPES and attribute == "__path__":
                # `from pandas.api.types import f` asks whether the module is a package; it holds no
                # submodule that pymilvus imports, so the answer "no" costs nothing.
                raise AttributeError(attribute)
        return getattr(_real(self.__name__), attribute)


@functools.cache  # one forwarder per name, as a module has one function per name
def _forwarder(function_name: str) -> Callable[..., Any]:
    def forward(*args: Any, **kwargs: Any) -> Any:
        return getattr(_real(PANDAS_TYPES), function_name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = function_name
    return forward


class _DeferredClassMeta(type):
    _pandas_name: str

    def _real_class(cls) -> type:
        real: type = getattr(_real(PANDAS), cls._pandas_name)
        return real

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls._real_class()(*args, **kwargs)

    def __instancecheck__(cls, instance: Any) -> bool:
        return not is_deferred() and isinstance(instance, cls._real_class())

    def __subclasscheck__(cls, subclass: type) -> bool:
        return not is_deferred() and issubclass(subclass, cls._real_class())

    def __getattr__(cls, attribute: str) -> Any:
        if is_deferred() and attribute.startswith("__"):
            raise AttributeError(attribute)  # typing and inspect probe classes for dunders: no import for that
        return getattr(cls._real_class(), attribute)


@functools.cache  # one class per name: `pd.DataFrame is pd.DataFrame`, as with pandas
def _deferred_class(class_name: str) -> type:
    return _DeferredClassMeta(class_name, (), {"_pandas_name": class_name, "__module__": PANDAS})
