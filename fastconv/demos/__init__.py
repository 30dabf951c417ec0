"""The runnable examples: ``fastconv demo <name>`` runs ``fastconv.demos.<module>.main(argv)``."""
import importlib
import importlib.util

# demo name -> module in this package; each module has main(argv=None) -> int
DEMOS = {
    "digits": "digits",
    "segment": "segment",
    "variable-size": "variable_size",
    "autoencoder": "autoencoder",
    "audio": "audio",
    "features": "features",
}


def available():
    """The demos whose module is present."""
    found = []
    for name, module in DEMOS.items():
        if importlib.util.find_spec(f"{__name__}.{module}") is not None:
            found.append(name)
    return found


def run(name, argv=None):
    if name not in DEMOS:
        raise SystemExit(f"unknown demo {name!r}; expected one of: {', '.join(available())}")
    if name not in available():
        raise SystemExit(f"the demo {name!r} is not written yet; available: {', '.join(available())}")
    module = importlib.import_module(f"{__name__}.{DEMOS[name]}")
    return module.main(argv)
