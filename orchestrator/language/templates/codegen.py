"""Jinja's code generator with the hooks of the render limits.

The code it generates calls the sandbox's `bounded_*` methods to count loop items,
output captured by macros and blocks, `~`, slices, list and dict literals and
comparisons of two variables; statements that need other templates (include, import,
extends, block) fail to compile. `source` refuses the same statements at validation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst

REFUSED_STATEMENTS: dict[type[nodes.Node], str] = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from … import",
    nodes.Block: "block",
}


def refusal(statement: nodes.Node) -> str:
    keyword = REFUSED_STATEMENTS[type(statement)]
    return (
        f"templates cannot use '{{% {keyword} %}}': each notification field is a template "
        "of its own (include, import, extends and block are not available)"
    )


def _constant(node: nodes.Node) -> bool:
    if isinstance(node, nodes.Const):
        return True
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return all(isinstance(item, nodes.Const) for item in node.items)
    return False


def cheap_comparison(node: nodes.Compare) -> bool:
    """A comparison with a constant (`x == 'pro'`, `x in ['a', 'b']`) costs little; others
    (`a == b`, `'x' in some_list`) may walk a whole list, and are a step each."""
    left: nodes.Node = node.expr
    for operand in node.ops:
        right = operand.expr
        if operand.op in ("in", "notin"):
            if not _constant(right):
                return False
        elif not (_constant(left) or _constant(right)):
            return False
        left = right
    return True


class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator with the hooks of the render limits: `for` loops count
    their items, output captured by macros and `{% set %}`/`{% filter %}`/`{% call %}`
    blocks counts against MAX_BUILT_TOTAL, `~` and slices check their size, list and
    dict literals their contents, comparisons of two variables are steps; include,
    import, extends and block are refused."""

    _buffered = False

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for statement in node.find_all(tuple(REFUSED_STATEMENTS)):
            self.fail(refusal(statement), statement.lineno)
        for loop in list(node.find_all(nodes.For)):
            # `for x in environment.bounded_loop(ITER)`: each item is a step.
            counted = nodes.EnvironmentAttribute("bounded_loop", lineno=loop.iter.lineno)
            loop.iter = nodes.Call(counted, [loop.iter], [], None, None, lineno=loop.iter.lineno)
        super().visit_Template(node, frame)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        hook = node.node
        if isinstance(hook, nodes.EnvironmentAttribute) and hook.name == "bounded_loop":
            # A call the parser never makes: the loop hook above, called directly.
            self.write("environment.bounded_loop(")
            self.visit(node.args[0], frame)
            self.write(")")
            return
        super().visit_Call(node, frame, forward_caller=forward_caller)

    def visit_Output(self, node: nodes.Output, frame: Frame) -> None:
        self._buffered = frame.buffer is not None
        try:
            super().visit_Output(node, frame)
        finally:
            self._buffered = False

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        text = super()._output_const_repr(group)
        return f"environment.bounded_output({text})" if self._buffered else text

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.buffer is not None:
            self.write("environment.bounded_output(")
        super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        super()._output_child_post(node, frame, finalize)
        if frame.buffer is not None:
            self.write(")")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(f"), {join})")

    @optimizeconst
    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.bounded_slice(")
        self.visit(node.node, frame)
        for part in (node.arg.start, node.arg.stop, node.arg.step):
            self.write(", ")
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
        self.write(")")

    @optimizeconst
    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        if cheap_comparison(node):
            super().visit_Compare(node, frame)
            return
        self.write("(environment.bounded_step() and ")
        super().visit_Compare(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load" or _constant(node):
            super().visit_Tuple(node, frame)
            return
        self.write("environment.bounded_literal(")
        super().visit_Tuple(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        if _constant(node):
            super().visit_List(node, frame)
            return
        self.write("environment.bounded_literal(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.bounded_literal(")
        super().visit_Dict(node, frame)
        self.write(")")
