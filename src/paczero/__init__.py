"""paczero: PAC-private zeroth-order fine-tuning of language models with forward passes only.

Heavy modules (torch, transformers) load on first use, so ``paczero privacy`` stays quick.
"""

from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "train": "paczero.trainer",
    "evaluate": "paczero.evaluation",
    "predict": "paczero.prediction",
    "resume": "paczero.durable",
    "export": "paczero.durable",
    "Result": "paczero.trainer",
    "ZOOptimizer": "paczero.engine.optim",
    "StepResult": "paczero.engine.optim",
    "RunConfig": "paczero.config",
    "load_config": "paczero.config",
    "build_mechanism": "paczero.mechanisms",
    "audit": "paczero.auditing",
    "audit_trials": "paczero.auditing",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'paczero' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The lazy names too: ``dir(paczero)`` shows train, predict, export, load_config, ..."""
    return sorted({*globals(), *_LAZY})


__all__ = sorted(_LAZY)
