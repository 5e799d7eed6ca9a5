"""Placeholder: being written (dynamic sparse training)."""

from cutlib.context import MethodResult, RunContext


def disparse_dynamic(ctx: RunContext) -> MethodResult:
    """Not written yet."""
    raise NotImplementedError("disparse_dynamic is being written")
