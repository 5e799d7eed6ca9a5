"""One colour, one marker and one display name per method, in every figure of the project
(docs/architecture.md#figures).

Each method declares its style where it is registered (``colour``, ``marker`` and ``label`` of
:class:`~cutlib.methods.registry.Method`, in the method's own module); this module is the only
way a figure reads them, so CUT is the same blue with the same circle in notebook 06's bars,
notebook 07's curves and notebook 08's trade-off plot, and a new method brings its colour with it.
``tests/test_palette.py`` checks that the methods' colours differ and that every plotting function
of the package draws a method in its colour.
"""

from __future__ import annotations

from collections.abc import Iterable

from cutlib.methods import get_method

#: How the dense reference is drawn where it is a line, not a method's curve.
DENSE_LINE = {"color": "black", "ls": "--", "lw": 1.0}


def method_style(method: str) -> dict[str, str]:
    """Keyword arguments for ``Axes.plot``/``scatter`` that draw ``method`` in its style:
    ``color``, ``marker`` and ``label`` (the method's display name).

    Raises:
        ValueError: for an unknown method, naming the valid ones.

    Example:
        >>> method_style("cut")
        {'color': '#0072B2', 'marker': 'o', 'label': 'CUT'}
    """
    declared = get_method(method)
    return {"color": declared.colour, "marker": declared.marker, "label": method_label(method)}


def method_label(method: str) -> str:
    """The name figures and tables show for ``method`` (its registered ``label``, else its name).

    Example:
        >>> method_label("disparse_pt"), method_label("magnitude")
        ('DiSparse (pre-trained)', 'magnitude')
    """
    declared = get_method(method)
    return declared.label or declared.name


def method_colours(methods: Iterable[str]) -> dict[str, str]:
    """``method → colour`` for ``methods``: a seaborn ``palette``.

    Example:
        >>> method_colours(["cut", "random"])
        {'cut': '#0072B2', 'random': '#7F7F7F'}
    """
    return {method: get_method(method).colour for method in methods}
