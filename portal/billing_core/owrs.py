"""The Open Water Rate Specification (OWRS): reading files and computing bills.

An OWRS file is YAML: ``metadata`` and a ``rate_structure`` of customer
classes, each a set of named parts. A part is

- a field: a number (``flat_rate: 2.78``);
- a formula: arithmetic over fields and data columns (``flat_rate*usage_ccf``),
  evaluated here by a small parser, never by ``eval``;
- a map: ``depends_on`` one or more data columns and ``values`` keyed by their
  values, joined with ``|`` when there are several;
- a list: tier starts or tier prices;
- ``Tiered`` or ``Budget``: a commodity charge computed from the class's tier
  starts and prices.

Semantics (the quote contract):
- ``usage_ccf`` is one billing period's usage in the file's own unit.
- ``Tiered``: a tier start is the first unit billed at that tier's price, so
  with starts 0, 15, 41 units 1-14 are tier 1 and units 15-40 tier 2.
- ``Budget``: allocations (``indoor``, ``outdoor``, each term of ``budget``, and
  percentage starts such as ``133%`` of the budget) are rounded to whole units,
  half to even; usage up to an allocation is billed in the tier below it.
- Newer files suffix a charge's parameters (``tier_starts_commodity``,
  ``gpcd_commodity``; ``_drought`` for drought surcharges) while formulas use
  the bare names: a bare name resolves to the suffixed field of the charge
  being computed.
- A data column given for a case takes precedence over a field of the same
  name in the file (``days_in_period``, for example).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, DecimalException, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from .errors import InvalidInput
from .money import cents_to_decimal, round_cents

if TYPE_CHECKING:
    from yaml._yaml import Mark as CMark

RATE_TYPES = ("Tiered", "Budget")
SUFFIXES = ("commodity", "drought")
ONE = Decimal(1)
HUNDRED = Decimal(100)

# Limits on what a file may ask of the parser, so that reading a file, importing it and
# every page that shows or prices it stay fast whatever was uploaded. Each is several times
# what the ~490 real files of the corpus need: their largest formula has 133 characters and
# 8 levels, their largest file 2,462 YAML values, 14 classes and 32 KB, their largest class
# 21 parts, map 108 values, list 9 items, number 87,121 and text 225 characters.
MAX_FORMULA_LENGTH = 400
#: Levels of the formula's tree: ``a+b+c`` has 3, ``((a))`` 1; parentheses inside parentheses count too.
MAX_FORMULA_DEPTH = 24
#: Fields referring to fields referring to fields...: ``bill`` -> ``commodity_charge`` -> ``flat_rate``.
MAX_REFERENCE_DEPTH = 16
#: Any number in a file, and any value a formula reaches while a bill is computed.
MAX_NUMBER = Decimal(10) ** 9
MAX_VALUE = Decimal(10) ** 12
#: Characters in one number as written (``2.78``, ``1.5e3``).
MAX_NUMBER_TEXT = 40
#: Levels of YAML nesting (the corpus uses 5: rate_structure, class, map, values, a list).
MAX_YAML_DEPTH = 12
#: YAML nodes in one file (every key, value and list item), and parts of one class.
MAX_NODES = 10_000
MAX_CLASSES = 50
MAX_PARTS = 100
#: Choices in one map and items in one list.
MAX_MAP_VALUES = 500
MAX_LIST_ITEMS = 50
#: Characters in one YAML value (a formula, a name, a note in the metadata).
MAX_TEXT = 2_000
#: Characters of the metadata written out (every version of every class keeps a copy; the
#: corpus's largest is 413).
MAX_METADATA = 4_000
#: Characters in a field's name, and in a class's (the schedule's customer class holds 40).
MAX_NAME_LENGTH = 100
MAX_CLASS_NAME = 40


class OwrsError(InvalidInput):
    """A file, class or field that cannot be used, with where and why."""

    def __init__(
        self, message: str, *, file: str | None = None, cust_class: str | None = None, field_name: str | None = None
    ) -> None:
        where = ", ".join(
            part
            for part in (
                f"file {file}" if file else "",
                f"class {cust_class}" if cust_class else "",
                f"field {field_name}" if field_name else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message, field_name)
        self.reason = message
        self.file = file
        self.cust_class = cust_class
        self.field_name = field_name


# --------------------------------------------------------------------------- formulas

_TOKEN = re.compile(r"\s*(?:(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([A-Za-z_][A-Za-z_0-9]*)|(.))")

# An expression tree: ("num", Decimal) | ("name", str) | ("neg", node) | (op, left, right)
Node = tuple


def parse_formula(text: str) -> Node:
    """Parse arithmetic: numbers, names, + - * /, unary minus, parentheses.

    A formula is at most ``MAX_FORMULA_LENGTH`` characters and ``MAX_FORMULA_DEPTH``
    levels deep, and every number in it is at most ``MAX_NUMBER``, so that no formula a
    file can hold makes parsing, computing or showing it slow."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = str(text)
    if len(text) > MAX_FORMULA_LENGTH:
        raise ValueError(f"the formula has {len(text):,} characters; at most {MAX_FORMULA_LENGTH} are allowed")
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
        number, name, other = m.groups()
        if number is not None:
            problem = number_problem(number)
            if problem:
                raise ValueError(problem)
            tokens.append(("num", number))
        elif name is not None:
            tokens.append(("name", name))
        elif other is not None and other.strip():
            if other not in "+-*/()":
                raise ValueError(f"unexpected character {other!r} in formula {text!r}")
            tokens.append(("op", other))
    if not tokens:
        raise ValueError("empty formula")
    index = 0
    nesting = 0

    def deeper(step: int = 1) -> None:
        nonlocal nesting
        nesting += step
        if nesting > MAX_FORMULA_DEPTH:
            raise ValueError(f"the formula nests deeper than {MAX_FORMULA_DEPTH} levels")

    def peek() -> tuple[str, str] | None:
        return tokens[index] if index < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal index
        tok = tokens[index]
        index += 1
        return tok

    def expr() -> Node:
        node = term()
        while (tok := peek()) in (("op", "+"), ("op", "-")):
            take()
            node = (tok[1], node, term())
        return node

    def term() -> Node:
        node = unary()
        while (tok := peek()) in (("op", "*"), ("op", "/")):
            take()
            node = (tok[1], node, unary())
        return node

    def unary() -> Node:
        tok = peek()
        if tok in (("op", "-"), ("op", "+")):
            take()
            deeper()
            node = unary()
            deeper(-1)
            return ("neg", node) if tok[1] == "-" else node
        return atom()

    def atom() -> Node:
        tok = peek()
        if tok is None:
            raise ValueError(f"formula {text!r} ends too early")
        take()
        if tok[0] == "num":
            return ("num", Decimal(tok[1]))
        if tok[0] == "name":
            return ("name", tok[1])
        if tok == ("op", "("):
            deeper()
            node = expr()
            deeper(-1)
            if take() != ("op", ")"):
                raise ValueError(f"missing ) in formula {text!r}")
            return node
        raise ValueError(f"unexpected {tok[1]!r} in formula {text!r}")

    try:
        node = expr()
    except IndexError as exc:
        raise ValueError(f"formula {text!r} ends too early") from exc
    if index != len(tokens):
        raise ValueError(f"unexpected {tokens[index][1]!r} in formula {text!r}")
    if formula_depth(node) > MAX_FORMULA_DEPTH:
        raise ValueError(f"the formula nests deeper than {MAX_FORMULA_DEPTH} levels")
    return node


def formula_depth(node: Node) -> int:
    if node[0] in ("num", "name"):
        return 1
    return 1 + max(formula_depth(child) for child in node[1:])


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_NOT_FINITE = re.compile(r"[-+]?(?:\.?nan|\.?inf(?:inity)?|s?nan)", re.IGNORECASE)


_INF = float("inf")


def number_problem(value: Any) -> str | None:
    """Why a number in a file cannot be used (NaN, infinite, too long, too large), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        # YAML's .nan and .inf arrive as Decimal NaN and infinities (the loader's); they are
        # never used as numbers.
        if value.is_nan():
            return "NaN (not a number) is not a rate"
        if value.is_infinite():
            return "an infinite number is not a rate"
        # The loader keeps numbers over MAX_NUMBER_TEXT characters as text, so only the size
        # is left to check (every bill checks its file's numbers: this is the quick way).
        if value.copy_abs() <= MAX_NUMBER:
            return None
        # Shown as before numbers were Decimal: 1.0e+300 reads 1e+300.
        value = json_number(value)
    if isinstance(value, float):
        if value in (_INF, -_INF):  # written finite but past what a float holds (1.0e+400)
            return "an infinite number is not a rate"
        text = repr(value)
    elif isinstance(value, int):
        text = str(value) if abs(value) < 10**50 else "1" + "0" * 51
    else:
        text = str(value).strip()
        if _NOT_FINITE.fullmatch(text):
            return f"{text} is not a finite number"
        if not _NUMBER.fullmatch(text):
            return None
    if len(text) > MAX_NUMBER_TEXT:
        return f"the number {text[:20]}... has {len(text):,} characters; at most {MAX_NUMBER_TEXT} are allowed"
    if Decimal(text).copy_abs() > MAX_NUMBER:  # copy_abs: no context, so no Overflow
        return f"the number {text} is over the limit of {MAX_NUMBER:,}"
    return None


def names_in(node: Node) -> set[str]:
    if node[0] == "num":
        return set()
    if node[0] == "name":
        return {node[1]}
    return set().union(*(names_in(child) for child in node[1:]))


def sum_terms(node: Node) -> list[tuple[int, Node]]:
    """A formula's top-level terms with their signs: a+b-c -> [(1,a), (1,b), (-1,c)]."""
    if node[0] == "+":
        return sum_terms(node[1]) + sum_terms(node[2])
    if node[0] == "-":
        return sum_terms(node[1]) + [(-s, n) for s, n in sum_terms(node[2])]
    return [(1, node)]


def evaluate_node(node: Node, lookup: Callable[[str], Any]) -> Decimal:
    """The formula's value; ValueError when it has none (a division by zero, a value that is
    not a finite number, or one beyond ``MAX_VALUE``)."""
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "name":
        value = lookup(node[1])
        if isinstance(value, list) and len(value) == 1 and _is_numeric(value[0]):
            value = Decimal(value[0])  # a one-item YAML list is that item
        if not isinstance(value, Decimal):
            raise ValueError(f"{node[1]} is {plain(value)!r}, not a number")
        return bounded(value, node[1])
    if kind == "neg":
        return -evaluate_node(node[1], lookup)
    left = evaluate_node(node[1], lookup)
    right = evaluate_node(node[2], lookup)
    try:
        if kind == "+":
            result = left + right
        elif kind == "-":
            result = left - right
        elif kind == "*":
            result = left * right
        elif right == 0:
            raise ValueError(f"division by zero ({_render(node[2])} is 0)")
        else:
            result = left / right
    except DecimalException as exc:
        raise ValueError(f"{_render(node)} cannot be computed ({type(exc).__name__})") from exc
    if -MAX_VALUE <= result <= MAX_VALUE:  # the usual case, without rendering the formula
        return result
    return bounded(result, _render(node))


def bounded(value: Decimal, what: str) -> Decimal:
    if not value.is_finite():
        raise ValueError(f"{what} is {value}, not a finite number")
    if value.copy_abs() > MAX_VALUE:
        raise ValueError(f"{what} comes to {value:.3E}, over the limit of {MAX_VALUE:,}")
    return value


# --------------------------------------------------------------------------- files


@dataclass
class OwrsFile:
    path: str
    metadata: dict[str, Any]
    classes: dict[str, dict[str, Any]]
    formula_cache: dict[str, Node] = field(default_factory=dict)

    @property
    def bill_unit(self) -> str:
        unit = str(self.metadata.get("bill_unit") or "ccf").strip().lower()
        return {"ccf": "CCF", "hcf": "CCF", "kgal": "kgal", "kilolitre": "kL"}.get(unit, unit)

    @property
    def effective_date(self) -> str | None:
        value = self.metadata.get("effective_date")
        return None if value is None else str(value)

    def formula(self, text: str) -> Node:
        node = self.formula_cache.get(text)
        if node is None:
            node = self.formula_cache[text] = parse_formula(text)
        return node


class RefusedYaml(yaml.MarkedYAMLError):
    """Valid YAML that an OWRS file may not use (an alias, a duplicate key, ...), with its line."""

    def __init__(self, problem: str, mark: yaml.Mark | CMark | None) -> None:
        # libyaml's marks (the events CParser reads) have yaml.Mark's line and column; the
        # stubs type MarkedYAMLError with PyYAML's own Mark only.
        super().__init__(problem=problem, problem_mark=cast("yaml.Mark | None", mark))


class _StrictComposer(Composer, SafeConstructor):
    """PyYAML's safe loading, stricter.

    - Aliases (``*name``) are refused as the composer meets them, before anything is
      expanded, so an "alias bomb" (a few lines that expand to billions of values) stops
      at its first alias. An anchor (``&name``) that nothing refers to is only a label and
      is let through (one corpus file has one).
    - Merge keys (``<<``) are refused (they exist to merge aliases).
    - A key given twice in one mapping with two different values is refused with both
      lines: PyYAML keeps the last one silently, so part of what the file says would be
      lost. The same key and value twice loses nothing and is let through.
    - Nesting is capped at ``MAX_YAML_DEPTH`` levels and a file at ``MAX_NODES`` nodes.
    - Every number (YAML int or float) is a ``Decimal`` made from its text; ``.nan`` and
      ``.inf`` are Decimal NaN and infinities, which ``number_problem`` refuses by class and
      field. A number written with more than ``MAX_NUMBER_TEXT`` characters stays text, so
      the file's checks refuse it by class and field (Python would refuse to read an
      integer of over 4,300 digits with a bare ValueError).
    """

    if TYPE_CHECKING:
        # From the parser each loader mixes in (libyaml's CParser, or PyYAML's Parser).
        def check_event(self, *choices: Any) -> bool: ...
        def peek_event(self) -> yaml.Event | None: ...

    def _start_limits(self) -> None:
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            assert isinstance(event, yaml.AliasEvent)
            raise RefusedYaml(
                f"YAML aliases (*{event.anchor}) are not allowed in a rate file: write the value out where it is used",
                event.start_mark,
            )
        self.nodes += 1
        event = self.peek_event()
        assert event is not None  # a node is composed from the event that starts it
        if self.nodes > MAX_NODES:
            raise RefusedYaml(f"the file has more than {MAX_NODES:,} values", event.start_mark)
        if isinstance(event, yaml.ScalarEvent) and len(event.value) > MAX_TEXT:
            raise RefusedYaml(
                f"a value of {len(event.value):,} characters; at most {MAX_TEXT:,} are allowed", event.start_mark
            )
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise RefusedYaml(f"the file nests deeper than {MAX_YAML_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, tuple[int, Any]] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise RefusedYaml("YAML merge keys (<<) are not allowed in a rate file", key_node.start_mark)
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first.get(key)
                except TypeError:
                    raise RefusedYaml("a key must be a name or a number", key_node.start_mark) from None
                value = self.construct_object(value_node, deep=True)
                if seen is not None and seen[1] != value:
                    raise RefusedYaml(
                        f"the key {key!r} is given twice in the same mapping (first at line {seen[0]}), "
                        "with different values; keep one",
                        key_node.start_mark,
                    )
                if seen is None:
                    first[key] = (key_node.start_mark.line + 1, value)
        return super().construct_mapping(node, deep=deep)

    def construct_number(self, node: Any) -> Any:
        """Every YAML number (int or float) as a ``Decimal``, read from the text as written:
        ``2.78`` is exactly 2.78, never the float nearest it. Booleans stay booleans."""
        if len(node.value) > MAX_NUMBER_TEXT:
            return node.value
        if node.tag.endswith(":int"):
            # PyYAML reads 0x1F, 0o17, 1_000 and 1:30 (sexagesimal) as integers: exact.
            return Decimal(self.construct_yaml_int(node))
        return yaml_float(node.value)


if hasattr(yaml, "CSafeLoader"):
    from yaml._yaml import CParser  # where yaml.cyaml takes it from

    class StrictLoader(_StrictComposer, CParser, Resolver):
        """The one YAML loader of rate files. libyaml reads the events (it is faster and
        takes the tabs some real files have); this module's composer and PyYAML's safe
        constructor make the values, every number a ``Decimal`` (``construct_number``)."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._start_limits()

else:  # pragma: no cover - PyYAML without libyaml

    class StrictLoader(_StrictComposer, yaml.SafeLoader):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            yaml.SafeLoader.__init__(self, stream)
            self._start_limits()


# The stubs allow constructors of PyYAML's own loader classes only, not of a loader made of its parts.
StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_number)  # type: ignore[type-var]
StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_number)  # type: ignore[type-var]


_TENTH = Decimal("0.1")


def yaml_float(text: str) -> Decimal:
    """A YAML float as a Decimal, as PyYAML reads the text (underscores dropped, ``.inf``,
    ``.nan``, sexagesimal ``1:30.5``), without going through a binary float.

    A float written without decimals (``5.``) keeps one (``5.0``), so that it stays a float
    when stored as JSON (``json_number``), as it was before numbers were Decimal."""
    value = text.replace("_", "").lower()
    negative = value[:1] == "-"
    if value[:1] in ("+", "-"):
        value = value[1:]
    if value == ".inf":
        return Decimal("-Infinity" if negative else "Infinity")
    if value == ".nan":
        return Decimal("NaN")
    if value.endswith("."):
        value += "0"
    try:
        if ":" in value:
            result = Decimal(0)
            for part in value.split(":"):
                result = result * 60 + Decimal(part)
        else:
            result = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"could not convert string to float: {value!r}") from None
    if "e" in value and result.as_tuple().exponent == 0 and result.adjusted() < MAX_NUMBER_TEXT // 2:
        result = result.quantize(_TENTH)  # 5.e+0
    return result.copy_negate() if negative else result


def json_number(value: Decimal) -> int | float:
    """How a stored definition (JSON) keeps a number of the file: an integer as an integer,
    any other number as the float JSON writes (its text is the file's, less trailing zeros;
    ``decimals`` reads it back). Numbers are never computed with in this form."""
    if value.is_finite() and value.as_tuple().exponent == 0:
        return int(value)
    return float(value)


def decimals(value: Any) -> Any:
    """A stored definition's part (JSON: ``int`` and ``float``) with every number a
    ``Decimal``, as ``load_text`` gives them; booleans, text and ``Decimal`` unchanged.

    A float from JSON is read back from its shortest text (``repr``), which is the number as
    the file wrote it, so 2.78 is 2.78 and not the binary float's 2.77999..."""
    if isinstance(value, dict):
        return {k: decimals(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decimals(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    return value


def plain(value: Any) -> Any:
    """``value`` with every ``Decimal`` as ``json_number`` makes it: how messages and size
    checks see the file's values (``[2.5, 3]``, not ``[Decimal('2.5'), Decimal('3')]``)."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, Decimal):
        return json_number(value) if value.is_finite() else value
    return value


def load_text(text: str, path: str = "<text>") -> OwrsFile:
    try:
        # What yaml.load(text, Loader=StrictLoader) does; the stubs take PyYAML's own loaders only.
        loader = StrictLoader(text)
        try:
            doc = loader.get_single_data()
        finally:
            loader.dispose()
    except RefusedYaml as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise OwrsError(f"{where}{exc.problem}", file=path) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise OwrsError(f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}", file=path) from exc
    except (ValueError, TypeError, OverflowError) as exc:  # a value PyYAML's constructors cannot make
        raise OwrsError(f"not valid YAML: {exc}", file=path) from exc
    if not isinstance(doc, dict):
        raise OwrsError("the file is not an OWRS document (no top-level mapping)", file=path)
    structure = doc.get("rate_structure")
    if not isinstance(structure, dict) or not structure:
        raise OwrsError("there is no rate_structure with customer classes", file=path)
    if len(structure) > MAX_CLASSES:
        raise OwrsError(
            f"the file has {len(structure)} customer classes; at most {MAX_CLASSES} fit one file", file=path
        )
    classes: dict[str, dict[str, Any]] = {}
    for name, body in structure.items():
        if not isinstance(body, dict):
            raise OwrsError("a customer class must be a mapping of rate parts", file=path, cust_class=str(name))
        classes[str(name)] = body
    metadata = doc.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    size = len(repr(plain(metadata)))
    if size > MAX_METADATA:
        raise OwrsError(f"the metadata takes {size:,} characters; at most {MAX_METADATA:,} are allowed", file=path)
    return OwrsFile(path=path, metadata=metadata, classes=classes)


_FILE_CACHE: dict[str, OwrsFile] = {}


def load_path(path: str | Path) -> OwrsFile:
    key = str(path)
    cached = _FILE_CACHE.get(key)
    if cached is None:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise OwrsError(f"cannot read the file ({exc.strerror})", file=key) from exc
        cached = _FILE_CACHE[key] = load_text(raw.decode("utf-8", errors="replace"), key)
    return cached


# --------------------------------------------------------------------------- bills


def _norm_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip().lower().replace('"', "").replace("'", "")
    text = re.sub(r"[\s_]+", "|", text)
    if re.fullmatch(r"-?\d+\.0+", text):
        text = text.split(".")[0]
    return text


def _truthy_norm(text: str) -> str:
    return {"yes": "true", "y": "true", "1": "true", "no": "false", "n": "false", "0": "false"}.get(text, text)


def round_allocation(value: Decimal) -> Decimal:
    return value.quantize(ONE, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class TierUse:
    tier: int
    quantity: Decimal
    price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.quantity * self.price


@dataclass(frozen=True)
class Part:
    """One term of the ``bill`` formula, with the tiers it used if any."""

    name: str
    sign: int
    amount: Decimal
    tiers: tuple[TierUse, ...] = ()


@dataclass(frozen=True)
class Quote:
    bill: Decimal
    parts: tuple[Part, ...]
    unit: str


class ClassBill:
    """Computes one class's bill for one set of data values."""

    def __init__(self, file: OwrsFile, cust_class: str, data: Mapping[str, Any]) -> None:
        body = file.classes.get(cust_class)
        if body is None:
            raise OwrsError(
                f"no rates for customer class {cust_class!r} (the file has {', '.join(file.classes)})",
                file=file.path,
                cust_class=cust_class,
            )
        self.file, self.cust_class, self.body = file, cust_class, body
        self.data = {k: v for k, v in data.items() if v is not None and v != ""}
        self.values: dict[str, Any] = {}
        self.in_progress: set[str] = set()
        self.tiers: dict[str, tuple[TierUse, ...]] = {}

    def error(self, message: str, name: str | None = None) -> OwrsError:
        return OwrsError(message, file=self.file.path, cust_class=self.cust_class, field_name=name)

    # -- names --------------------------------------------------------------
    def resolve(self, name: str, suffix: str | None) -> tuple[str, Any] | None:
        """The file part a name means in the context of a suffix, or None."""
        candidates = [name]
        if suffix:
            candidates.append(f"{name}_{suffix}")
        candidates += [f"{name}_{s}" for s in SUFFIXES if s != suffix]
        for candidate in candidates:
            if candidate in self.body:
                return candidate, self.body[candidate]
        return None

    def value(self, name: str, suffix: str | None = None) -> Any:
        if name in self.data:
            return self.data_value(name)
        found = self.resolve(name, suffix)
        if found is None:
            raise self.error(f"needs {name!r}, which is neither in the rate file nor given as data", name)
        key, raw = found
        if key in self.values:
            return self.values[key]
        if key in self.in_progress:
            raise self.error(f"{key} refers to itself", key)
        if len(self.in_progress) >= MAX_REFERENCE_DEPTH:
            raise self.error(f"fields refer to fields more than {MAX_REFERENCE_DEPTH} levels deep", key)
        own_suffix = _suffix_for(key, suffix)
        self.in_progress.add(key)
        try:
            result = self.compute(key, raw, own_suffix)
        finally:
            self.in_progress.discard(key)
        self.values[key] = result
        return result

    def data_value(self, name: str) -> Any:
        raw = self.data[name]
        if isinstance(raw, Decimal):
            value = raw
        elif isinstance(raw, (int,)) and not isinstance(raw, bool):
            value = Decimal(raw)
        else:
            text = str(raw).strip()
            if not _NUMBER.fullmatch(text):
                return text
            value = Decimal(text)
        try:
            return bounded(value, name)
        except ValueError as exc:
            raise self.error(str(exc), name) from exc

    def number(self, name: str, suffix: str | None = None) -> Decimal:
        value = self.value(name, suffix)
        if isinstance(value, list) and len(value) == 1 and _is_numeric(value[0]):
            value = Decimal(value[0])
        if not isinstance(value, Decimal):
            raise self.error(f"{name} is {plain(value)!r}, where a number is needed", name)
        return value

    # -- parts ----------------------------------------------------------------
    def compute(self, key: str, raw: Any, suffix: str | None) -> Any:
        if isinstance(raw, bool):
            raise self.error("a true/false value where a number or formula is needed", key)
        if isinstance(raw, float):
            raise TypeError("OWRS numbers are Decimal (load_text, or decimals() for a stored definition), never float")
        if _is_numeric(raw):
            return self.file_number(raw, key)
        if isinstance(raw, dict):
            return self.compute(key, self.lookup_map(key, raw), suffix)
        if isinstance(raw, list):
            return raw
        if raw is None:
            raise self.error("has no value", key)
        text = str(raw).strip()
        if text in RATE_TYPES:
            return self.tiered_charge(key, text, suffix)
        if _NUMBER.fullmatch(text):
            return self.file_number(text, key)
        return self.formula_value(key, text, suffix)

    def file_number(self, raw: Decimal | int | str, key: str) -> Decimal:
        """A number of the file (as the loader made it, or written as text in a list or a
        share such as ``133%``), checked by ``number_problem``."""
        problem = number_problem(raw)
        if problem:
            raise self.error(problem, key)
        if isinstance(raw, Decimal):
            return raw
        return Decimal(raw.strip() if isinstance(raw, str) else raw)

    def formula_value(self, key: str, text: str, suffix: str | None) -> Decimal:
        try:
            node = self.file.formula(text)
        except (ValueError, InvalidOperation) as exc:
            raise self.error(f"cannot read formula {text!r}: {exc}", key) from exc
        try:
            return evaluate_node(node, lambda n: self.value(n, suffix))
        except (ValueError, DecimalException) as exc:
            raise self.error(f"cannot compute {text!r}: {exc}", key) from exc

    def lookup_map(self, key: str, raw: dict) -> Any:
        depends = raw.get("depends_on")
        depends = [depends] if isinstance(depends, str) else list(depends or [])
        if not depends:
            raise self.error("a map needs depends_on naming a data column", key)
        starts_key = _range_key(raw)
        if starts_key is not None and isinstance(raw.get("values"), list):
            return self.lookup_range(key, depends, raw[starts_key], raw["values"])
        if "values" not in raw or not isinstance(raw["values"], dict):
            raise self.error("a map needs both depends_on and values", key)
        parts = []
        for dep in depends:
            value = self.data.get(dep)
            if value is None:
                found = self.resolve(dep, None)
                if found is None:
                    raise self.error(f"depends on {dep!r}, which was not given", key)
                value = self.value(dep)
            parts.append(value)
        values: dict[Any, Any] = raw["values"]
        joined = "|".join(str(p) for p in parts)
        if joined in values:
            return values[joined]
        wanted = "|".join(_truthy_norm(_norm_key(p)) for p in parts)
        for map_key, map_value in values.items():
            if _truthy_norm(_norm_key(map_key)) == wanted or _norm_key(map_key) == wanted:
                return map_value
        shown = ", ".join(str(k) for k in list(values)[:12])
        raise self.error(f"no value for {'|'.join(depends)} = {joined!r} (the file has {shown})", key)

    def lookup_range(self, key: str, depends: list[str], starts: Any, values: list[Any]) -> Any:
        """A map over ranges of one number: the value of the last start at or below it."""
        if len(depends) != 1 or not isinstance(starts, list) or len(starts) != len(values) or not starts:
            raise self.error("a range map needs one depends_on column and as many starts as values", key)
        x = self.value(depends[0]) if depends[0] not in self.data else self.data_value(depends[0])
        if not isinstance(x, Decimal):
            raise self.error(f"depends on {depends[0]!r}, which must be a number", key)
        chosen = values[0]
        for start, value in zip(starts, values, strict=True):
            if x >= self.list_number(start, None, key):
                chosen = value
        return chosen

    # -- tiers ----------------------------------------------------------------
    def tier_list(self, base: str, suffix: str | None, charge: str) -> list[Any]:
        for name in ([f"{base}_{suffix}"] if suffix else []) + [f"{base}_commodity", base]:
            if name in self.body:
                value = self.value(name, suffix)
                if isinstance(value, Decimal):
                    return [value]
                if not isinstance(value, list) or not value:
                    raise self.error(f"{name} must be a list", name)
                return value
        raise self.error(f"is {self.body.get(charge)} but the class has no {base}", charge)

    def tiered_charge(self, key: str, kind: str, suffix: str | None) -> Decimal:
        usage = self.number("usage_ccf")
        starts_raw = self.tier_list("tier_starts", suffix, key)
        prices_raw = self.tier_list("tier_prices", suffix, key)
        if len(starts_raw) != len(prices_raw):
            raise self.error(f"has {len(starts_raw)} tier starts but {len(prices_raw)} tier prices", key)
        prices = [self.list_number(p, suffix, key) for p in prices_raw]
        # Breakpoints: usage at or below breakpoint i is billed in tiers up to i.
        breaks: list[Decimal] = []
        for start in starts_raw[1:]:
            if kind == "Budget" and isinstance(start, str) and not _is_number(start):
                breaks.append(self.budget_start(start, suffix, key))
            elif isinstance(start, str) and start.strip().endswith("%"):
                raise self.error(f"tier start {start!r} is a share of a budget, which only a Budget charge has", key)
            else:
                breaks.append(self.list_number(start, suffix, key) - ONE)
        uses: list[TierUse] = []
        below = Decimal(0)
        for i, price in enumerate(prices):
            if i < len(breaks):
                qty = max(min(usage - below, breaks[i] - below), Decimal(0))
            else:
                qty = max(usage - below, Decimal(0))
            below += qty
            if qty:
                uses.append(TierUse(i + 1, qty, price))
        self.tiers[key] = tuple(uses)
        return sum((u.amount for u in uses), Decimal(0))

    def list_number(self, item: Any, suffix: str | None, key: str) -> Decimal:
        if isinstance(item, bool):
            raise self.error("a true/false value in a tier list", key)
        if _is_numeric(item):
            return self.file_number(item, key)
        if isinstance(item, str) and _is_number(item):
            return self.file_number(item, key)
        return self.formula_value(key, str(item).strip(), suffix)

    def budget_start(self, start: str, suffix: str | None, key: str) -> Decimal:
        text = start.strip()
        if text.endswith("%"):
            if not _is_number(text[:-1]):
                raise self.error(f"cannot read tier start {start!r}", key)
            share = self.file_number(text[:-1].strip(), key) / HUNDRED
            return round_allocation(share * self.budget_total(suffix, key))
        return round_allocation(self.formula_value(key, text, suffix))

    def budget_total(self, suffix: str | None, key: str) -> Decimal:
        if "budget" in self.data:
            return round_allocation(self.number("budget"))
        found = self.resolve("budget", suffix)
        if found is None:
            raise self.error("percentage tier starts need a budget", key)
        name, raw = found
        if _is_numeric(raw):
            return round_allocation(self.file_number(raw, name))
        if isinstance(raw, dict):
            raw = self.lookup_map(name, raw)
            if _is_numeric(raw):
                return round_allocation(self.file_number(raw, name))
        try:
            node = self.file.formula(str(raw))
        except (ValueError, InvalidOperation) as exc:
            raise self.error(f"cannot read formula {raw!r}: {exc}", name) from exc
        total = Decimal(0)
        try:
            for sign, term in sum_terms(node):
                total += sign * round_allocation(evaluate_node(term, lambda n: self.value(n, suffix)))
        except (ValueError, DecimalException) as exc:
            raise self.error(f"cannot compute {raw!r}: {exc}", name) from exc
        return total

    # -- the bill ---------------------------------------------------------------
    def quote(self) -> Quote:
        try:
            result = self._quote()
            bounded(result.bill, "the bill")
        except (ValueError, DecimalException, RecursionError) as exc:
            raise self.error(f"cannot compute the bill: {exc}", "bill") from exc
        return result

    def _quote(self) -> Quote:
        bill_raw = self.body.get("bill")
        if bill_raw is None:
            raise self.error("the class has no bill formula", "bill")
        if _is_numeric(bill_raw):
            amount = self.file_number(bill_raw, "bill")
            return Quote(amount, (Part("bill", 1, amount),), self.file.bill_unit)
        try:
            node = self.file.formula(str(bill_raw))
        except (ValueError, InvalidOperation) as exc:
            raise self.error(f"cannot read formula {bill_raw!r}: {exc}", "bill") from exc
        parts = []
        total = Decimal(0)
        for sign, term in sum_terms(node):
            try:
                amount = evaluate_node(term, lambda n: self.value(n))
            except (ValueError, DecimalException) as exc:
                raise self.error(f"cannot compute {bill_raw!r}: {exc}", "bill") from exc
            name = term[1] if term[0] == "name" else _render(term)
            parts.append(Part(name, sign, amount, self.tiers.get(name, ())))
            total += sign * amount
        return Quote(total, tuple(parts), self.file.bill_unit)


def _range_key(raw: Mapping[str, Any]) -> str | None:
    """In a map over number ranges, the key holding the starts (``area_starts``, ``lot_area_tier``)."""
    return next((k for k, v in raw.items() if k not in ("depends_on", "values") and isinstance(v, list)), None)


def _suffix_for(key: str, inherited: str | None) -> str | None:
    """Which suffixed parameters a part uses: its own suffix, else the charge it names."""
    for suffix in SUFFIXES:
        if key.endswith(f"_{suffix}"):
            return suffix
    if "drought" in key:
        return "drought"
    if key == "commodity_charge":
        return "commodity"
    return inherited


def _is_numeric(value: Any) -> bool:
    """A number as the loader makes them (``Decimal``), or an ``int`` a caller passed."""
    return isinstance(value, (Decimal, int)) and not isinstance(value, bool)


def _is_number(text: str) -> bool:
    """A plain decimal number as written in a file (not ``NaN`` or ``Infinity``, which
    ``Decimal`` would also read)."""
    return _NUMBER.fullmatch(str(text).strip()) is not None


def _render(node: Node) -> str:
    kind = node[0]
    if kind == "num":
        return str(node[1])
    if kind == "name":
        return node[1]
    if kind == "neg":
        return f"-{_render(node[1])}"
    return f"({_render(node[1])}{kind}{_render(node[2])})"


def quote(file: OwrsFile, cust_class: str, data: Mapping[str, Any]) -> Quote:
    return ClassBill(file, cust_class, data).quote()


def dollars(amount: Decimal) -> str:
    """A bill in dollars and cents, rounded by ``money.round_cents`` (never "-0.00")."""
    return str(cents_to_decimal(round_cents(amount)))


def check_class(file: OwrsFile, cust_class: str) -> list[OwrsError]:
    """Static checks of one class: its size, every number (finite, within ``MAX_NUMBER``),
    every formula parses (within the length and depth limits), maps are well formed."""
    problems: list[OwrsError] = []
    body = file.classes[cust_class]

    def err(message: str, name: str | None) -> None:
        problems.append(OwrsError(message, file=file.path, cust_class=cust_class, field_name=name))

    if len(cust_class) > MAX_CLASS_NAME:
        err(f"a class name has at most {MAX_CLASS_NAME} characters", None)
        return problems
    if len(body) > MAX_PARTS:
        err(f"the class has {len(body)} parts; at most {MAX_PARTS} are allowed", None)
        return problems
    if "bill" not in body:
        err("the class has no bill formula", "bill")
    for name, raw in body.items():
        name = str(name)
        if len(name) > MAX_NAME_LENGTH:
            err(f"a field name has at most {MAX_NAME_LENGTH} characters", name[:MAX_NAME_LENGTH] + "...")
            continue
        size = _size_problem(raw)
        if size:
            err(size, name)
            continue
        for number in _numbers(raw):
            problem = number_problem(number)
            if problem:
                err(problem, name)
                break
        for text in formula_texts(raw):
            try:
                file.formula(text)
            except (ValueError, InvalidOperation) as exc:
                err(f"cannot read formula {text[:80]!r}: {exc}", name)
        if isinstance(raw, dict):
            is_range = _range_key(raw) is not None and isinstance(raw.get("values"), list)
            if "depends_on" not in raw or not (isinstance(raw.get("values"), dict) or is_range):
                err("a map needs depends_on and values keyed by the data's values", name)
    return problems


def _size_problem(raw: Any) -> str | None:
    if isinstance(raw, dict):
        values = raw.get("values")
        if isinstance(values, (dict, list)) and len(values) > MAX_MAP_VALUES:
            return f"the map has {len(values)} values; at most {MAX_MAP_VALUES} are allowed"
        return next((p for p in map(_size_problem, raw.values()) if p), None)
    if isinstance(raw, list):
        if len(raw) > MAX_LIST_ITEMS:
            return f"the list has {len(raw)} items; at most {MAX_LIST_ITEMS} are allowed"
        return next((p for p in map(_size_problem, raw) if p), None)
    return None


def _numbers(raw: Any) -> Iterable[Any]:
    """Every value in a part that is, or is written as, a number (``133%`` counts as 133)."""
    if isinstance(raw, dict):
        for value in raw.values():
            yield from _numbers(value)
    elif isinstance(raw, list):
        for value in raw:
            yield from _numbers(value)
    elif isinstance(raw, str) and raw.strip().endswith("%"):
        yield raw.strip()[:-1]
    else:
        yield raw


# What the trial computation at import gives for data columns: usage of none, a little and
# a lot, a 30-day period, and middling household and garden figures. A name that is neither
# a field of the class nor one of these is a data column the rate needs (OWRS allows any,
# such as ``cii_allocation``): it is tried at 1 and listed on the version's page.
TRIAL_USAGES = (Decimal(0), Decimal(15), Decimal(150))
TRIAL_DATA = {
    "days_in_period": Decimal(30),
    "hhsize": Decimal(4),
    "irr_area": Decimal(1000),
    "et_amount": Decimal(5),
    "number_dwelling_units": ONE,
    "dwelling_units": ONE,
}
#: Names that cannot be data columns: what Decimal would read as NaN or infinity, the rate
#: types, and names starting with an underscore (``__import__``).
_NOT_DATA = {"nan", "snan", "inf", "infinity", "tiered", "budget"}


def is_data_column(name: str) -> bool:
    return not name.startswith("_") and name.lower() not in _NOT_DATA


class _TrialBill(ClassBill):
    """A class's bill computed with sample data, trying every branch of every map."""

    def value(self, name: str, suffix: str | None = None) -> Any:
        if name not in self.data and self.resolve(name, suffix) is None:
            if not is_data_column(name):
                raise ValueError(f"unknown name {name!r}: it is not a field of this class and cannot be a data column")
            return TRIAL_DATA.get(name, ONE)
        return super().value(name, suffix)

    def compute(self, key: str, raw: Any, suffix: str | None) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("values"), dict) and raw["values"]:
            results = [self.branch(key, value, suffix) for value in raw["values"].values()]
            return results[0]
        return super().compute(key, raw, suffix)

    def branch(self, key: str, raw: Any, suffix: str | None) -> Any:
        result = self.compute(key, raw, suffix)
        if isinstance(result, list):
            for item in result:
                if isinstance(item, str) and not _is_number(item) and not item.strip().endswith("%"):
                    self.formula_value(key, item.strip(), suffix)
        return result


def try_class(file: OwrsFile, cust_class: str) -> list[OwrsError]:
    """Compute the class's bill, and every part of it, at no, some and much usage, with
    every branch of every map: a division by zero, an unknown name, a value beyond
    ``MAX_VALUE`` is found here, at import, named by class and field, not on a bill."""
    for usage in TRIAL_USAGES:
        bill = _TrialBill(file, cust_class, {"usage_ccf": usage, "days_in_period": TRIAL_DATA["days_in_period"]})
        try:
            bill.quote()
        except OwrsError as exc:
            return [exc]
        except (ValueError, DecimalException, RecursionError) as exc:
            return [OwrsError(f"cannot be computed: {exc}", file=file.path, cust_class=cust_class)]
    return []


def formula_texts(raw: Any) -> Iterable[str]:
    if isinstance(raw, str):
        text = raw.strip()
        if text not in RATE_TYPES and not _is_number(text) and not text.endswith("%"):
            yield text
    elif isinstance(raw, dict) and isinstance(raw.get("values"), dict):
        for value in raw["values"].values():
            yield from formula_texts(value)
    elif isinstance(raw, list):
        for item in raw:
            yield from formula_texts(item)
