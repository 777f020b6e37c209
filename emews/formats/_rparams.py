"""mlrMBO parameter sets (R, ParamHelpers) read into a :class:`~emews.space.Space` -- parsed, never run.

CANDLE Supervisor's mlrMBO workflow takes its search space from an R file such as
``workflows/mlrMBO/data/nt3_nightly.R``::

    param.set <- makeParamSet(
      makeDiscreteParam("batch_size", values = c(16, 32)),
      makeIntegerParam("epochs", lower = 2, upper = 5),
      makeNumericParam("learning_rate", lower = 0.00001, upper = 0.1),
      makeIntegerParam("latent_dim", lower = 1, upper = 9, trafo = function(x) 2L^x)
    )

:func:`read_r_params` reads the subset of R those files use with a tokenizer and a small
recursive-descent parser; nothing is evaluated (no R, no ``eval``): numbers, strings,
``TRUE``/``FALSE``, ``c(...)``, ``list(...)``, ``a:b`` and arithmetic on numbers are folded by
the parser itself. Mapping (ParamHelpers -> emews):

=====================================================  =============================================
``makeNumericParam(id, lower, upper)``                  ``real``
``... trafo = function(x) 10^x`` (any ``B^x``, ``exp(x)``)  ``real`` from ``B^lower`` to ``B^upper``, log scale
``... trafo = function(x) k * x``                       ``real`` from ``k*lower`` to ``k*upper``
``makeIntegerParam(id, lower, upper)``                  ``int``
``... trafo = function(x) 2L^x`` (``B^x``, ``x^k``, ``k*x``)  ``ordinal`` of the transformed values, in order
``makeDiscreteParam(id, values = c(...) | list(...))``  ``categorical`` (one value: ``constant``)
``makeLogicalParam(id)``                                ``bool``
=====================================================  =============================================

``default =`` is checked against the range and otherwise unused (mlrMBO's search does not use
it either). Anything else -- ``requires =`` (conditional parameters), ``forbidden =``,
``special.vals``, ``tunable = FALSE``, vector parameters, other trafos, other statements --
is a :class:`~emews.errors.SpaceError` naming the file, the line and the text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SpaceError
from ..space import Bool, Categorical, Constant, Dimension, Int, Ordinal, Real, Space

__all__ = ["parse_r_params", "read_r_params"]

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\f\n]+)
  | (?P<comment>\#[^\n]*)
  | (?P<num>(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)[Li]?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<name>[A-Za-z.][A-Za-z0-9._]*|`[^`]*`)
  | (?P<op><<-|<-|->>|->|==|!=|<=|>=|&&|\|\||%[^%\n]*%|[-+*/^:=(),{}\[\]$@~!&|<>?;])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int
    end: int


@dataclass
class _Node:
    kind: str  # num, str, name, call, fn, neg, bin, empty
    pos: int
    end: int
    value: Any = None  # num/str/name; op for bin; name for call
    args: list = field(default_factory=list)  # call: [(name | None, node)]; bin: [a, b]; fn: [body]
    params: list = field(default_factory=list)  # fn: parameter names


class _Parser:
    def __init__(self, text: str, source: str):
        self.text, self.source = text, source
        self.toks: list[_Tok] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                self.fail(pos, pos + 1, f"unexpected character {text[pos]!r}")
            kind = m.lastgroup or ""
            if kind not in ("ws", "comment"):
                self.toks.append(_Tok(kind, m.group(), m.start(), m.end()))
            pos = m.end()
        self.i = 0

    # -- errors name the file, the line and the text ---------------------------------------
    def line_of(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def snippet(self, pos: int, end: int) -> str:
        s = " ".join(self.text[pos:end].split())
        return s if len(s) <= 120 else s[:117] + "..."

    def fail(self, pos: int, end: int, why: str) -> None:
        raise SpaceError(f"{why}: `{self.snippet(pos, end)}`", self.source, f"line {self.line_of(pos)}")

    # -- tokens ------------------------------------------------------------------------------
    def peek(self, k: int = 0) -> _Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def at(self, text: str) -> bool:
        t = self.peek()
        return t is not None and t.kind == "op" and t.text == text

    def take(self) -> _Tok:
        t = self.peek()
        if t is None:
            end = len(self.text)
            self.fail(max(0, end - 40), end, "unexpected end of file (an unclosed parenthesis?)")
        self.i += 1
        return t  # type: ignore[return-value]

    def expect(self, text: str) -> _Tok:
        t = self.take()
        if t.kind != "op" or t.text != text:
            self.fail(t.pos, t.end, f"expected {text!r}")
        return t

    # -- grammar (R precedence: ^ > unary minus > : > * / > + -) -----------------------------
    def statement(self) -> tuple[_Node | None, _Node]:
        """``target <- expr``, ``target = expr`` or a bare ``expr``."""
        first = self.expr()
        if self.at("<-") or self.at("=") or self.at("<<-"):
            self.take()
            return first, self.expr()
        if self.at("->"):
            self.take()
            return self.expr(), first
        return None, first

    def expr(self) -> _Node:
        node = self.mul()
        while self.at("+") or self.at("-"):
            op = self.take().text
            rhs = self.mul()
            node = _Node("bin", node.pos, rhs.end, op, [node, rhs])
        return node

    def mul(self) -> _Node:
        node = self.range()
        while self.at("*") or self.at("/"):
            op = self.take().text
            rhs = self.range()
            node = _Node("bin", node.pos, rhs.end, op, [node, rhs])
        return node

    def range(self) -> _Node:
        node = self.unary()
        while self.at(":"):
            self.take()
            rhs = self.unary()
            node = _Node("bin", node.pos, rhs.end, ":", [node, rhs])
        return node

    def unary(self) -> _Node:
        if self.at("-") or self.at("+"):
            t = self.take()
            x = self.unary()
            return x if t.text == "+" else _Node("neg", t.pos, x.end, None, [x])
        return self.power()

    def power(self) -> _Node:
        node = self.primary()
        if self.at("^"):
            self.take()
            rhs = self.unary()  # right-associative, and 2^-1 is allowed
            node = _Node("bin", node.pos, rhs.end, "^", [node, rhs])
        return node

    def primary(self) -> _Node:
        t = self.take()
        if t.kind == "num":
            return _Node("num", t.pos, t.end, t.text)
        if t.kind == "str":
            return _Node("str", t.pos, t.end, _unquote(t.text))
        if t.kind == "op" and t.text == "(":
            inner = self.expr()
            close = self.expect(")")
            inner.pos, inner.end = t.pos, close.end
            return inner
        if t.kind == "op" and t.text == "{":
            body = self.expr()
            close = self.expect("}")
            body.pos, body.end = t.pos, close.end
            return body
        if t.kind == "name" and t.text == "function":
            self.expect("(")
            params = []
            while not self.at(")"):
                p = self.take()
                if p.kind != "name":
                    self.fail(p.pos, p.end, "expected a parameter name")
                params.append(p.text)
                if not self.at(")"):
                    self.expect(",")
            self.expect(")")
            body = self.expr()
            return _Node("fn", t.pos, body.end, None, [body], params)
        if t.kind == "name":
            if t.text.startswith("`"):
                self.fail(t.pos, t.end, "backquoted names are not supported")
            if self.at("("):
                return self.call(t)
            return _Node("name", t.pos, t.end, t.text)
        self.fail(t.pos, t.end, "unexpected token")
        raise AssertionError  # pragma: no cover

    def _arg_end(self) -> int:
        """Where the argument starting at the current token ends (for an error's text)."""
        depth, end = 0, len(self.text)
        for t in self.toks[self.i:]:
            if t.kind == "op" and t.text in "([{":
                depth += 1
            elif t.kind == "op" and t.text in ")]}":
                if depth == 0:
                    return t.pos
                depth -= 1
            elif t.kind == "op" and t.text == "," and depth == 0:
                return t.pos
            end = t.end
        return end

    def call(self, name: _Tok) -> _Node:
        self.expect("(")
        args: list[tuple[str | None, _Node]] = []
        while True:
            if self.at(")"):
                close = self.take()
                if args:  # `f(a, )`: R's "argument is empty"
                    self.fail(args[-1][1].pos, close.end, "an empty argument after this one (a trailing comma?): "
                              "R itself rejects it")
                break
            t, nxt = self.peek(), self.peek(1)
            arg_name = None
            if t is not None and t.kind in ("name", "str") and nxt is not None and nxt.kind == "op" and nxt.text == "=":
                arg_name = _unquote(t.text) if t.kind == "str" else t.text
                self.i += 2
            if arg_name in _UNSUPPORTED_ARGS and t is not None:
                self.fail(t.pos, self._arg_end(), _UNSUPPORTED_ARGS[arg_name])
            if self.at(",") or self.at(")"):
                t2 = self.peek()
                self.fail(name.pos, t2.end if t2 else len(self.text), "an empty argument (a trailing comma?): R itself rejects it")
            args.append((arg_name, self.expr()))
            if self.at(","):
                self.take()
                continue
            close = self.expect(")")
            break
        return _Node("call", name.pos, close.end, name.text, args)


def _unquote(s: str) -> str:
    body = s[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


# --------------------------------------------------------------------------------------------
# Folding constants (no evaluation of anything but literals and arithmetic on them)
# --------------------------------------------------------------------------------------------

_CONSTANTS = {"TRUE": True, "T": True, "FALSE": False, "F": False, "NULL": None, "Inf": math.inf}


class _Reader:
    def __init__(self, parser: _Parser):
        self.p = parser

    def fail(self, node: _Node, why: str) -> None:
        self.p.fail(node.pos, node.end, why)

    def value(self, node: _Node) -> Any:
        """A literal, vector or list as Python (c() flattens and coerces as R does)."""
        k = node.kind
        if k == "num":
            return _number(node.value, self, node)
        if k == "str":
            return node.value
        if k == "name":
            if node.value in _CONSTANTS:
                return _CONSTANTS[node.value]
            if node.value in ("True", "False"):
                self.fail(node, f"`{node.value}` is Python, not R (R writes {node.value.upper()}); R itself rejects it")
            self.fail(node, f"unknown name {node.value!r} (only literals are read, nothing is evaluated)")
        if k == "neg":
            v = self.value(node.args[0])
            if isinstance(v, list):
                return [-self._num(x, node) for x in v]
            return -self._num(v, node)
        if k == "bin":
            a, b = (self.value(x) for x in node.args)
            if node.value == ":":
                lo, hi = self._num(a, node), self._num(b, node)
                step = 1 if hi >= lo else -1
                return [int(lo) + i * step for i in range(int(abs(hi - lo)) + 1)] if float(lo).is_integer() else \
                    [lo + i * step for i in range(int(abs(hi - lo)) + 1)]
            a, b = self._num(a, node), self._num(b, node)
            try:
                if node.value == "+":
                    return a + b
                if node.value == "-":
                    return a - b
                if node.value == "*":
                    return a * b
                if node.value == "/":
                    return a / b
                if node.value == "^":
                    r = a**b
                    return r
            except (ZeroDivisionError, OverflowError):
                self.fail(node, "arithmetic error")
        if k == "call" and node.value == "c":
            out: list = []
            for name, arg in node.args:
                v = self.value(arg)
                out.extend(v if isinstance(v, list) else [v])
            return _coerce(out)
        if k == "call" and node.value == "list":
            return [self.value(arg) for _, arg in node.args]
        self.fail(node, "unsupported construct (only literals, c(), list() and arithmetic on numbers are read)")

    def _num(self, v: Any, node: _Node) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            self.fail(node, f"expected a number, got {v!r}")
        return v


def _number(text: str, r: _Reader, node: _Node) -> int | float:
    if text.endswith("i"):
        r.fail(node, "complex numbers are not supported")
    integer = text.endswith("L")
    t = text[:-1] if integer else text
    if t.lower().startswith("0x"):
        return int(t, 16)
    if integer or re.fullmatch(r"\d+", t):
        v = float(t)
        return int(v) if v.is_integer() else v
    return float(t)


def _coerce(values: list) -> list:
    """R's c(): any string makes all strings; else numbers make logicals 1/0."""
    if any(isinstance(v, str) for v in values):
        return [v if isinstance(v, str) else ("TRUE" if v is True else "FALSE" if v is False else _r_format(v))
                for v in values]
    if any(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return [int(v) if isinstance(v, bool) else v for v in values]
    return values


def _r_format(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return format(v, ".15g") if isinstance(v, float) else str(v)


# --------------------------------------------------------------------------------------------
# ParamHelpers constructors
# --------------------------------------------------------------------------------------------

_SIGNATURES = {
    "makeNumericParam": ("id", "lower", "upper", "allow.inf", "default", "trafo", "requires", "tunable", "special.vals"),
    "makeIntegerParam": ("id", "lower", "upper", "default", "trafo", "requires", "tunable", "special.vals"),
    "makeDiscreteParam": ("id", "values", "trafo", "default", "requires", "tunable", "special.vals"),
    "makeLogicalParam": ("id", "default", "requires", "tunable"),
}
_UNSUPPORTED_ARGS = {
    "requires": "conditional parameters (requires =) are not supported; split the search into one space per "
                "condition",
    "forbidden": "forbidden regions (forbidden =) are not supported",
    "special.vals": "special.vals is not supported",
}


def _param(r: _Reader, call: _Node) -> Dimension:
    fname = call.value
    sig = _SIGNATURES.get(fname)
    if sig is None:
        what = "vector parameters are" if "Vector" in str(fname) else f"{fname}() is"
        r.fail(call, f"{what} not supported (makeNumericParam, makeIntegerParam, makeDiscreteParam and "
                     "makeLogicalParam are)")
    args: dict[str, _Node] = {}
    positional = [a for a in sig]
    for name, node in call.args:
        if name is None:
            rest = [a for a in positional if a not in args]
            if not rest:
                r.fail(node, f"too many arguments to {fname}()")
            name = rest[0]
        if name not in sig:
            r.fail(node, f"{fname}() has no argument {name!r} (arguments: {', '.join(sig)})")
        if name in args:
            r.fail(node, f"argument {name!r} given twice")
        args[name] = node
    for name, why in _UNSUPPORTED_ARGS.items():
        if name in args:
            r.fail(args[name], why)
    if "tunable" in args and r.value(args["tunable"]) is not True:
        r.fail(args["tunable"], "tunable = FALSE is not supported")
    if "allow.inf" in args and r.value(args["allow.inf"]) is not False:
        r.fail(args["allow.inf"], "allow.inf = TRUE is not supported")
    if "id" not in args:
        r.fail(call, f"{fname}() needs the parameter's name")
    pid = r.value(args["id"])
    if not isinstance(pid, str) or not pid:
        r.fail(args["id"], "the parameter name must be a string")
    default = r.value(args["default"]) if "default" in args else None

    def check_default(dim: Dimension) -> Dimension:
        if "default" in args and not (isinstance(dim, Ordinal) and "trafo" in args):
            try:
                dim.validate(default)
            except SpaceError as e:
                r.fail(args["default"], f"default {default!r} is not a value of {pid!r} ({e})")
        return dim

    if fname == "makeLogicalParam":
        return check_default(Bool(pid))
    if fname == "makeDiscreteParam":
        if "values" not in args:
            r.fail(call, "makeDiscreteParam() needs values")
        if "trafo" in args:
            r.fail(args["trafo"], "a trafo on a discrete parameter is not supported")
        values = r.value(args["values"])
        values = values if isinstance(values, list) else [values]
        if any(isinstance(v, list) for v in values):
            r.fail(args["values"], "nested lists as discrete values are not supported")
        try:
            dim: Dimension = Constant(pid, values[0]) if len(values) == 1 else Categorical(pid, values)
        except SpaceError as e:
            r.fail(args["values"], str(e))
        return check_default(dim)
    # numeric / integer
    bounds = []
    for key in ("lower", "upper"):
        if key not in args:
            r.fail(call, f"{fname}() needs {key} (an unbounded parameter cannot be searched)")
        v = r.value(args[key])
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            r.fail(args[key], f"{key} must be a finite number, got {v!r}")
        bounds.append(v)
    lo, hi = bounds
    if lo > hi:
        r.fail(call, f"lower ({lo!r}) exceeds upper ({hi!r})")
    trafo = _trafo(r, args["trafo"]) if "trafo" in args else None
    integer = fname == "makeIntegerParam"
    if integer and (not float(lo).is_integer() or not float(hi).is_integer()):
        r.fail(call, f"an integer parameter needs integer bounds, got {lo!r}, {hi!r}")
    try:
        if trafo is None:
            dim = Int(pid, int(lo), int(hi)) if integer else Real(pid, float(lo), float(hi))
            return check_default(dim)
        kind, k = trafo
        if integer:
            if hi - lo > 100_000:
                r.fail(call, "a trafo over more than 100,000 integers is not supported")
            vals = [_apply(kind, k, x) for x in range(int(lo), int(hi) + 1)]
            if any(not math.isfinite(v) for v in vals):
                r.fail(args["trafo"], "the trafo gives a value that is not finite")
            vals = [int(v) if float(v).is_integer() else v for v in vals]
            return Constant(pid, vals[0]) if len(vals) == 1 else Ordinal(pid, vals)
        if kind == "exp":
            if k <= 0 or k == 1:
                r.fail(args["trafo"], f"the base of B^x must be > 0 and not 1, got {k!r}")
            a, b = sorted((_apply(kind, k, lo), _apply(kind, k, hi)))
            return Real(pid, a, b, log=True)
        if kind == "scale":
            a, b = sorted((k * lo, k * hi))
            return Real(pid, a, b)
        r.fail(args["trafo"], "x^k on a numeric parameter is not supported (B^x, exp(x) and k*x are)")
    except SpaceError as e:
        r.fail(call, str(e))
    raise AssertionError  # pragma: no cover


def _apply(kind: str, k: float, x: float) -> float:
    if kind == "exp":
        return float(k) ** x
    if kind == "power":
        return float(x) ** k
    return k * x


def _trafo(r: _Reader, node: _Node) -> tuple[str, float] | None:
    """``function(x) B^x`` / ``exp(x)`` -> ("exp", B); ``x^k`` -> ("power", k); ``k*x`` -> ("scale", k);
    ``x`` -> None."""
    if node.kind != "fn" or len(node.params) != 1:
        r.fail(node, "a trafo must be written function(x) ...")
    x = node.params[0]
    body = node.args[0]

    def is_x(n: _Node) -> bool:
        return n.kind == "name" and n.value == x

    def const(n: _Node) -> float | None:
        try:
            v = r.value(n)
        except SpaceError:
            return None
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    if is_x(body):
        return None
    if body.kind == "call" and body.value == "exp" and len(body.args) == 1 and is_x(body.args[0][1]) \
            and body.args[0][0] is None:
        return ("exp", math.e)
    if body.kind == "bin" and body.value == "^":
        a, b = body.args
        if is_x(b) and const(a) is not None:
            return ("exp", float(const(a)))  # type: ignore[arg-type]
        if is_x(a) and const(b) is not None:
            return ("power", float(const(b)))  # type: ignore[arg-type]
    if body.kind == "bin" and body.value == "*":
        a, b = body.args
        if is_x(b) and const(a) is not None:
            return ("scale", float(const(a)))  # type: ignore[arg-type]
        if is_x(a) and const(b) is not None:
            return ("scale", float(const(b)))  # type: ignore[arg-type]
    r.fail(node, "unsupported trafo (B^x, exp(x), x^k and k*x are supported)")
    raise AssertionError  # pragma: no cover


def parse_r_params(text: str, source: str = "<R>") -> Space:
    """The :class:`Space` of the one ``name <- makeParamSet(...)`` statement in ``text``."""
    parser = _Parser(text, source)
    reader = _Reader(parser)
    found: _Node | None = None
    while parser.peek() is not None:
        if parser.at(";"):
            parser.take()
            continue
        start = parser.peek().pos  # type: ignore[union-attr]
        target, node = parser.statement()
        is_set = node.kind == "call" and node.value == "makeParamSet"
        if not is_set or (target is not None and target.kind != "name"):
            parser.fail(start, node.end, "unsupported statement (a parameter-set file holds `name <- makeParamSet(...)`)")
        if found is not None:
            parser.fail(start, node.end, "a second makeParamSet(); give one per file")
        found = node
    if found is None:
        raise SpaceError("no makeParamSet(...) found", source)
    dims = []
    for name, arg in found.args:
        if name is not None and name in ("forbidden", "keys", "params"):
            reader.fail(arg, f"makeParamSet({name} = ...) is not supported")
        if arg.kind != "call":
            reader.fail(arg, "expected a make...Param(...) call")
        dims.append(_param(reader, arg))
    if not dims:
        parser.fail(found.pos, found.end, "an empty makeParamSet()")
    try:
        return Space(dims)
    except SpaceError as e:
        raise SpaceError(str(e), source) from None


def read_r_params(path: str | Path) -> Space:
    """Read an mlrMBO parameter-set file (``*.R``) into a :class:`Space` (see the module docstring).

    Raises:
        SpaceError: the file cannot be read, or uses a construct outside the supported subset
            (the message names the file, the line and the text).
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise SpaceError(f"cannot read the parameter file: {e.strerror}", str(p)) from None
    return parse_r_params(text, str(p))
