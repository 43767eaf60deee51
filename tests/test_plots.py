"""The shared plotting set-up: backend choice, PNGs and GIFs written whole, figures closed."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from minode import plots


def test_save_png_writes_the_figure_at_the_set_dpi_and_closes_it(tmp_path):
    fig, ax = plots.figure(figsize=(3, 2))
    ax.plot([0, 1], [1, 0])
    path = plots.save_png(fig, tmp_path / "line.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (3 * plots.DPI, 2 * plots.DPI)
    assert fig.number not in plots.pyplot().get_fignums()
    assert sorted(os.listdir(tmp_path)) == ["line.png"]  # no temporary file left behind


def test_save_gif_draws_every_frame_and_loops(tmp_path):
    fig, ax = plots.figure(figsize=(2, 2))
    line, = ax.plot([], [])
    ax.set(xlim=(0, 1), ylim=(0, 1))
    drawn = []

    def draw(k):
        drawn.append(k)
        line.set_data([0, 1], [k / 4, 1 - k / 4])

    path = plots.save_gif(fig, tmp_path / "moving.gif", draw, frames=range(5), fps=4)
    assert drawn == [0, 1, 2, 3, 4]
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 5
        assert gif.info["duration"] == 250 and gif.info["loop"] == 0
        first = np.asarray(gif.convert("RGB"))
        gif.seek(4)
        assert not np.array_equal(first, np.asarray(gif.convert("RGB")))  # the line moved
    assert fig.number not in plots.pyplot().get_fignums()


def test_save_gif_refuses_no_frames_and_a_bad_fps(tmp_path):
    fig, _ = plots.figure()
    with pytest.raises(ValueError, match="frames is empty"):
        plots.save_gif(fig, tmp_path / "empty.gif", lambda k: None, frames=[])
    with pytest.raises(ValueError, match="fps must be a positive finite number"):
        plots.save_gif(fig, tmp_path / "bad.gif", lambda k: None, frames=[0], fps=0)
    assert not list(tmp_path.iterdir())
    plots.pyplot().close(fig)


@pytest.mark.parametrize("environment, expected", [({}, "agg"), ({"MPLBACKEND": "svg"}, "svg")])
def test_pyplot_uses_agg_unless_a_backend_is_named(environment, expected):
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    code = "from minode import plots; print(plots.pyplot().get_backend().lower())"
    shown = subprocess.run([sys.executable, "-c", code], env={**env, **environment},
                           capture_output=True, text=True, check=True).stdout.strip()
    assert shown == expected
