"""``model.pt``: the saved compact model (docs/architecture.md#runs-and-the-run-store, contract).

A dict with ``format_version``, ``config`` (enough to rebuild the architecture), ``tasks`` (the
heads it has) and ``state_dict`` (plain tensors only, so ``torch.load(path, weights_only=True)``
reads it and nothing in the file can execute code).
"""

from __future__ import annotations

from pathlib import Path

import torch

from cutlib.io import save_torch
from cutlib.models import SceneNet

FORMAT_VERSION = 1


def save_model(model: SceneNet, path: Path) -> None:
    """Write ``model`` to ``path`` atomically in the ``model.pt`` format."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    save_torch(
        path,
        {
            "format_version": FORMAT_VERSION,
            "config": model.config(),
            "tasks": list(model.task_names),
            "state_dict": state,
        },
    )


def load_model(path: Path, device: str | torch.device = "cpu") -> SceneNet:
    """Rebuild the model saved at ``path`` (loaded with ``weights_only=True``).

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        ValueError: if the file is not a cutlib checkpoint of a supported format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise ValueError(f"{path} is not a cutlib model.pt (no format_version)")
    if payload["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {payload['format_version']}; this cutlib reads "
            f"{FORMAT_VERSION}: rerun the experiment to regenerate it"
        )
    model = SceneNet.from_config(payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device)
