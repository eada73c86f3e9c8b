"""pygame with only the parts the hall display draws with.

``import pygame`` runs pygame's ``__init__``, which imports every submodule it
has: the mixer with its codec libraries (FLAC, MP3, Opus, Vorbis, FluidSynth,
PulseAudio), joystick, sprite, sysfont, mask, transform... and ``pkgdata``,
which imports ``pkg_resources`` and with it a scan of every installed
distribution.  That is 15 MB of resident memory, against a 40 MB budget for
the whole display, of which the display uses about 3.

``load()`` imports the ``pygame`` package without running its ``__init__``,
then only the submodules the display needs, and gives the package the names
the display uses from its top level (``Rect``, ``Surface``, ``error``, the
constants).  Nothing is lost for code that wants more: the first other name
asked of the package (``pygame.mask``, ``pygame.init``...) runs pygame's own
``__init__`` in it, which completes it as a plain ``import pygame`` would.
When pygame was imported whole before, ``load()`` returns it as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType

# What render.py and app.py use, and what these import in C (base, rect, color, surface...).  Not
# "image": it loads SDL_image with its PNG, JPEG, TIFF and WebP libraries (0.6 MB), and only a
# screenshot needs it (``load("image")``).
SUBMODULES = ("base", "constants", "version", "rwobject", "surflock", "color", "rect", "bufferproxy", "math",
              "surface", "display", "event", "key", "mouse", "draw", "font")

_lock = threading.RLock()


def load(*extra: str) -> ModuleType:
    """The ``pygame`` package with (at least) the display's submodules and ``extra`` ones imported."""
    with _lock:
        package = sys.modules.get("pygame") or _lean_package()
    for name in extra:
        importlib.import_module(f"pygame.{name}")
    return package


def _lean_package() -> ModuleType:
    spec = importlib.util.find_spec("pygame")
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError("No module named 'pygame'", name="pygame")
    package = importlib.util.module_from_spec(spec)
    sys.modules["pygame"] = package
    try:
        for name in SUBMODULES:
            importlib.import_module(f"pygame.{name}")
        _without_pkg_resources("pygame.pkgdata")
        for name in ("base", "constants", "version"):
            module = sys.modules[f"pygame.{name}"]
            public = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
            package.__dict__.update({n: getattr(module, n) for n in public})
        package.__dict__.update(Rect=package.rect.Rect, Surface=package.surface.Surface,
                                SurfaceType=package.surface.Surface, Color=package.color.Color)
    except BaseException:
        for name in [n for n in sys.modules if n == "pygame" or n.startswith("pygame.")]:
            del sys.modules[name]
        raise
    completing = False

    def complete(name: str) -> object:
        """Runs pygame's own ``__init__`` in the package once, then answers as it would."""
        nonlocal completing
        with _lock:
            if not completing:
                completing = True
                del package.__dict__["__getattr__"]
                spec.loader.exec_module(package)  # type: ignore[union-attr]
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module 'pygame' has no attribute {name!r}") from None

    package.__dict__["__getattr__"] = complete
    return package


def _without_pkg_resources(module: str) -> None:
    """Imports ``module`` as if ``pkg_resources`` were not installed.

    pygame's default font and window icon are read through ``pygame.pkgdata``,
    which imports ``pkg_resources`` (5 MB, and slow) when it can, only to find
    the files next to itself, where its fallback finds them too.
    """
    if "pkg_resources" in sys.modules:
        importlib.import_module(module)
        return
    sys.modules["pkg_resources"] = None  # type: ignore[assignment]  # makes its import fail
    try:
        importlib.import_module(module)
    finally:
        del sys.modules["pkg_resources"]
