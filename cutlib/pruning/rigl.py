"""Placeholder: being written (dynamic sparse training)."""

from cutlib.context import MethodResult, RunContext


def rigl(ctx: RunContext) -> MethodResult:
    """Not written yet."""
    raise NotImplementedError("rigl is being written")
