"""Ultralytics, set up to run offline, and the device it runs on.

Ultralytics is imported only through :func:`offline_ultralytics`, which makes it work
offline: it downloads no weights, fonts or datasets, checks no PyPI versions and sends
no analytics.
"""

from __future__ import annotations

import logging
import os
import shutil
import types
from pathlib import Path

from PIL import Image


def offline_ultralytics(config_dir: str | os.PathLike, quiet: bool = False) -> types.ModuleType:
    """Import ``ultralytics`` set up to touch no network, and return it.

    Ultralytics reads its environment once, at import: ``YOLO_OFFLINE`` (no downloads, no
    update checks, no analytics), ``YOLO_CONFIG_DIR`` (where ``settings.json`` lives, here
    ``config_dir``), ``YOLO_AUTOINSTALL`` (no pip installs) and ``YOLO_VERBOSE``. So the
    first call in a process fixes the config folder; later calls only change verbosity.

    Settings turn off sync (analytics, error reports) and every logging integration, and
    the Ultralytics Platform API key is dropped from the environment, so no run is
    streamed anywhere. Torch keeps its thread count (Ultralytics would cap it at one), and
    ``PIL.Image.open`` stays Pillow's own: Ultralytics replaces it process-wide with one
    that, given a file that is no image, tries to install a HEIF plugin and raises
    ModuleNotFoundError, which :func:`d2lv.io.images.load_image` would not report as ImageError.
    Dataset checks look for the plotting font ``Arial.ttf`` in the config folder and probe
    its download URL when it is missing; matplotlib's DejaVu Sans is put there under that
    name (labels are never drawn: training passes ``plots=False``).
    """
    config_dir = Path(config_dir)
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir.resolve())
    os.environ["YOLO_VERBOSE"] = str(not quiet)
    os.environ.pop("ULTRALYTICS_API_KEY", None)
    omp_threads, pil_open = os.environ.get("OMP_NUM_THREADS"), Image.open
    import torch  # first: importing ultralytics sets OMP_NUM_THREADS=1, which caps torch's threads
    import ultralytics
    from ultralytics.utils import LOGGER, USER_CONFIG_DIR, torch_utils

    # its device selection, at every model's first predict, sets torch's threads to min(8, cores - 1)
    torch_utils.NUM_THREADS = torch.get_num_threads()

    if omp_threads is None:  # nor should that cap reach other libraries and subprocesses
        os.environ.pop("OMP_NUM_THREADS", None)
    Image.open = pil_open  # Ultralytics' replacement fails on a non-image with ModuleNotFoundError (pi_heif)
    LOGGER.setLevel(logging.ERROR if quiet else logging.INFO)
    no_integrations = dict.fromkeys(("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb"), False)
    wanted = {"sync": False, "api_key": "", **no_integrations}
    if any(ultralytics.settings.get(key) != value for key, value in wanted.items()):
        ultralytics.settings.update(wanted)
    _provide_font(Path(USER_CONFIG_DIR) / "Arial.ttf")
    return ultralytics


def _provide_font(target: Path) -> None:
    if not target.is_file():
        import matplotlib

        shutil.copyfile(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf", target)


def ultralytics_device(device: str) -> str:
    """``auto``: the first CUDA device when there is one, else ``cpu``; CUDA asked for but
    missing falls back to the CPU with a warning."""
    from d2lv.device import resolve_device

    return str(resolve_device(device))
