"""The runnable examples: ``fastconv demo <name>`` runs ``fastconv.demos.<module>.main(argv)``."""
import ast
import importlib
import importlib.util
import os

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


DEFAULT_OUT = "fastconv-output"       # the demos' pictures go here, under the current directory


def plain(text):
    """A docstring for a terminal (a --help text): without reStructuredText's backticks and
    bold marks."""
    return text.replace("``", "").replace("`", "").replace("**", "")


def summaries():
    """{name: what the demo shows, in one line}, for the demos present, read from their
    docstrings without importing them."""
    found = {}
    for name in available():
        origin = importlib.util.find_spec(f"{__name__}.{DEMOS[name]}").origin
        try:
            with open(origin, encoding="utf-8") as f:
                doc = ast.get_docstring(ast.parse(f.read())) or ""
        except (OSError, SyntaxError, ValueError):
            doc = ""
        first = " ".join(doc.split("\n\n", 1)[0].split())
        found[name] = plain(first.split(": ", 1)[-1])
    return found


def out_dir(out):
    """The demos' output folder as an absolute path: `out`, or DEFAULT_OUT in the current
    directory."""
    return os.path.abspath(os.path.expanduser(out or DEFAULT_OUT))


def run(name, argv=None):
    if name not in DEMOS:
        raise SystemExit(f"unknown demo {name!r}; expected one of: {', '.join(available())}")
    if name not in available():
        raise SystemExit(f"the demo {name!r} is not written yet; available: {', '.join(available())}")
    module = importlib.import_module(f"{__name__}.{DEMOS[name]}")
    return module.main(argv)
