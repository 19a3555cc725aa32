"""The ``lifecycle-diagram`` directive: the worker's lifecycle, drawn from the engine's table.

The dot source is built at every docs build from ``threadkit._engine.TRANSITIONS``
(with its ``State`` and ``Step`` enums), so the picture cannot drift from the
code; tests/test_docs.py checks that it draws every transition.
"""

from __future__ import annotations

from typing import Any

from threadkit._engine import TRANSITIONS, State, Step

# Steps that only the owner thread takes, drawn apart from the callers' steps.
_OWNER_STEPS = frozenset({Step.OPENED, Step.SWEPT, Step.FINISHED})
# FORKED leads every state to CLOSED: one edge each would hide the rest.
_FROM_ANY = Step.FORKED


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot_source() -> str:
    """The dot source of the lifecycle diagram.

    Every (state, step) -> state entry of ``TRANSITIONS`` is one edge
    ``STATE -> STATE`` labelled with the step, except FORKED, which leads from
    every state to CLOSED and is drawn once, from a point labelled "any state";
    that edge is emitted only if the table really has it for every state.
    """
    lines = [
        "digraph lifecycle {",
        '  graph [rankdir=TB, fontname="sans-serif", fontsize=11, nodesep=0.5, ranksep=0.45];',
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#35608f",'
        ' fontname="sans-serif", fontsize=11];',
        '  edge [fontname="sans-serif", fontsize=10, color="#444444"];',
    ]
    for state in State:
        label = (
            state.name if state.value == state.name.lower() else f"{state.name}\\n({state.value})"
        )
        extra = ', fillcolor="#dff0d8"' if state is State.RUNNING else ""
        lines.append(f'  {state.name} [label="{label}"{extra}];')
    forked_everywhere = all(TRANSITIONS.get((s, _FROM_ANY)) is State.CLOSED for s in State)
    for (before, step), after in TRANSITIONS.items():
        if step is _FROM_ANY and forked_everywhere:
            continue
        style = 'style=dashed, color="#35608f", fontcolor="#35608f"' if step in _OWNER_STEPS else ""
        if before is after and step in _OWNER_STEPS:
            # A state's two self-loops would be drawn on top of each other:
            # the owner's goes on the left side.
            style += ", tailport=w, headport=w"
        attrs = ", ".join(a for a in (f"label={_quote(' ' + step.value + ' ')}", style) if a)
        lines.append(f"  {before.name} -> {after.name} [{attrs}];")
    if forked_everywhere:
        lines.append('  ANY [label="any state", shape=plaintext, style="", fontname="sans-serif"];')
        lines.append(
            f"  ANY -> {State.CLOSED.name} [label={_quote(' ' + _FROM_ANY.value + ' ')},"
            " style=dotted];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def setup(app: Any) -> dict[str, Any]:
    # Sphinx is imported here, not at the top, so that tests/test_docs.py can
    # check dot_source() in every test run, where Sphinx is not installed.
    from docutils.statemachine import StringList  # noqa: PLC0415 - see above
    from sphinx.ext.graphviz import Graphviz  # noqa: PLC0415 - see above

    class LifecycleDiagram(Graphviz):
        """``.. lifecycle-diagram::`` with graphviz's options (``:caption:``, ``:alt:``)."""

        has_content = False
        required_arguments = 0
        optional_arguments = 0

        def run(self) -> list[Any]:
            self.content = StringList(dot_source().splitlines(), source="threadkit._engine")
            self.arguments = []
            return super().run()

    app.setup_extension("sphinx.ext.graphviz")
    app.add_directive("lifecycle-diagram", LifecycleDiagram)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
