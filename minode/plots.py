"""Plotting for the tutorials: one matplotlib set-up, one style, PNGs and GIFs written atomically.

    fig, ax = plots.figure(figsize=(5, 4))
    ax.plot(...)
    plots.save_png(fig, out_dir / "loss.png")

    fig, ax = plots.figure()
    line, = ax.plot([], [])
    plots.save_gif(fig, out_dir / "training.gif", lambda k: line.set_data(*paths[k]),
                   frames=range(len(paths)))

matplotlib's backend is chosen before pyplot is first imported: the one named by ``MPLBACKEND``
(Jupyter sets it to its inline backend) or the one already in use, else Agg, which needs no
display, so the tutorials run on a headless machine. `save_png` and `save_gif` close the figure
and write through `minode.files.atomic_file`, so an interrupted run never leaves half a picture;
inside a Jupyter kernel they also show the picture in the notebook.
"""
import io
import os
import sys
from pathlib import Path

import matplotlib
from PIL import Image

from minode.checks import check_positive
from minode.cli import in_notebook
from minode.files import atomic_file

__all__ = ["STYLE", "DPI", "pyplot", "figure", "save_png", "save_gif"]

DPI = 110  # resolution of the saved PNGs, dots per inch

# matplotlib rcParams set by `pyplot`, so every tutorial's figures look alike.
STYLE = {
    "savefig.dpi": DPI,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
}


def pyplot():
    """``matplotlib.pyplot`` with minode's backend choice and `STYLE` applied."""
    if "MPLBACKEND" not in os.environ and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    # imported here: the backend has to be chosen before pyplot is first imported
    import matplotlib.pyplot as plt
    plt.rcParams.update(STYLE)
    return plt


def figure(nrows=1, ncols=1, **subplots_kwargs):
    """A new figure and its axes: ``pyplot().subplots(nrows, ncols, **subplots_kwargs)``.

    Returns ``(fig, ax)`` for one panel, ``(fig, axes)`` with an array of axes for several
    (pass e.g. ``figsize=(w, h)`` in inches, ``sharex=True``).
    """
    return pyplot().subplots(nrows, ncols, **subplots_kwargs)


def save_png(fig, path, tight=True):
    """Write ``fig`` to the PNG file ``path`` (atomically) at `DPI`, close it; returns the path.

    ``tight`` runs ``fig.tight_layout()`` first (turn it off for layouts it cannot handle, such
    as a colorbar shared by a grid of axes).
    """
    path = Path(path)
    if tight:
        fig.tight_layout()
    with atomic_file(path) as file:
        fig.savefig(file, format="png", dpi=DPI)
    _show_in_notebook(path)
    pyplot().close(fig)
    return path


def save_gif(fig, path, draw, frames, fps=6):
    """Write an animated GIF of ``fig`` to ``path`` (atomically) and close the figure.

    For each item of ``frames``, ``draw(item)`` updates the figure's artists and the figure is
    rendered as one frame, at the figure's own dpi; the GIF shows ``fps`` frames a second and
    loops. Returns the path.
    """
    check_positive("fps", fps)
    path = Path(path)
    images = [_render(fig, draw, item) for item in frames]
    if not images:
        raise ValueError(f"save_gif: frames is empty, nothing to write to {path}")
    with atomic_file(path) as file:
        images[0].save(file, format="GIF", save_all=True, append_images=images[1:],
                       duration=round(1000 / fps), loop=0)
    _show_in_notebook(path)
    pyplot().close(fig)
    return path


def _show_in_notebook(path):
    """Show the image file ``path`` in the notebook, when running in one (the figure itself is
    closed after saving, so the inline backend would not show it)."""
    if in_notebook():
        # imported here: IPython is there only inside a kernel
        from IPython.display import Image as NotebookImage
        from IPython.display import display
        display(NotebookImage(filename=str(path)))


def _render(fig, draw, item):
    """``fig`` after ``draw(item)`` as an RGB pillow image (raw pixels, no PNG round trip)."""
    draw(item)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="rgba", dpi=fig.dpi)
    width, height = (int(size) for size in fig.bbox.size)  # Agg's canvas truncates likewise
    return Image.frombuffer("RGBA", (width, height), buffer.getbuffer(), "raw", "RGBA", 0,
                            1).convert("RGB")
