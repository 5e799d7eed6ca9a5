"""The synthetic presets: the scene generator, tasks and segmentation classes of each
synthetic dataset, one per dataset of the paper."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class SyntheticPreset:
    """One synthetic dataset: which scene generator, which tasks, which segmentation classes."""

    name: str
    scene: Literal["room", "street"]
    tasks: tuple[str, ...]
    class_names: tuple[str, ...]


PRESETS: dict[str, SyntheticPreset] = {
    p.name: p
    for p in (
        SyntheticPreset(
            "synth-nyuv2",
            "room",
            ("seg", "sn", "depth"),
            (
                "wall",
                "floor",
                "ceiling",
                "bed",
                "cabinet",
                "sofa",
                "table",
                "chair",
                "tv",
                "painting",
                "window",
                "lamp",
                "object",
            ),
        ),
        SyntheticPreset(
            "synth-cityscapes",
            "street",
            ("seg", "depth"),
            ("road", "sidewalk", "building", "wall", "pole", "vegetation", "sky", "person", "car"),
        ),
        SyntheticPreset(
            "synth-taskonomy",
            "room",
            ("seg", "sn", "depth", "keypoint", "edge"),
            (
                "wall",
                "floor",
                "ceiling",
                "bed",
                "cabinet",
                "shelf",
                "sofa",
                "table",
                "chair",
                "tv",
                "painting",
                "window",
                "lamp",
                "rug",
                "plant",
                "ball",
            ),
        ),
    )
}
