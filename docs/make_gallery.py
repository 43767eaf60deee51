"""Copy each tutorial's main figures from its default run into ``docs/gallery/`` as small PNGs.

    python docs/make_gallery.py [RESULTS]

``RESULTS`` is the folder holding the tutorials' output folders (default ``results``: the
folders ``spiral/``, ``mnist_odenet/``, ``latent_ode/``, ``cnf/``, ``stiff/``, ``augmented/``
and ``regularised/`` that the default runs write). Each figure is scaled to at most `WIDTH` pixels wide; ``README.md``'s
gallery shows them beside the paper's figures they reproduce.
"""
import argparse
from pathlib import Path

from PIL import Image

WIDTH = 640  # pixels: small enough for the README, large enough to read the labels

# (tutorial output folder, file) for every figure in the gallery
FIGURES = [
    ("spiral", "linear_phase.png"), ("spiral", "cubic_phase.png"), ("spiral", "mlp_field.png"),
    ("mnist_odenet", "figure3a_nfe_vs_error.png"),
    ("mnist_odenet", "figure3c_backward_vs_forward_nfe.png"),
    ("mnist_odenet", "figure3d_nfe_vs_epoch.png"),
    ("latent_ode", "reconstructions.png"), ("latent_ode", "homotopy.png"),
    ("cnf", "figure4.png"), ("cnf", "figure5_circles.png"),
    ("stiff", "trajectories.png"), ("stiff", "solvers.png"),
    ("augmented", "flip_1d.png"), ("augmented", "annuli_boundaries.png"),
    ("regularised", "nfe_over_training.png"),
]
GALLERY = Path(__file__).resolve().parent / "gallery"


def shrink(source, target):
    """Write ``source`` to ``target`` scaled to at most `WIDTH` pixels wide."""
    with Image.open(source) as image:
        if image.width > WIDTH:
            image = image.resize((WIDTH, round(image.height * WIDTH / image.width)),
                                 Image.LANCZOS)
        image.convert("RGB").save(target, optimize=True)


def main():
    """Shrink every figure of `FIGURES` found under RESULTS into the gallery folder."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="?", type=Path, default=Path("results"),
                        help="folder of the tutorials' output folders")
    results = parser.parse_args().results
    GALLERY.mkdir(exist_ok=True)
    for folder, name in FIGURES:
        source = results / folder / name
        if not source.exists():
            raise SystemExit(f"{source} is missing: run `python tutorials/{folder}.py` first")
        shrink(source, GALLERY / f"{folder}_{name}")
        print(f"wrote {GALLERY / f'{folder}_{name}'}")


if __name__ == "__main__":
    main()
