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
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, DivisionByZero, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from .errors import InvalidInput

RATE_TYPES = ("Tiered", "Budget")
# libyaml when present: the same safe loader, in C.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SUFFIXES = ("commodity", "drought")
ONE = Decimal(1)
HUNDRED = Decimal(100)


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
    """Parse arithmetic: numbers, names, + - * /, unary minus, parentheses."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = str(text)
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
        number, name, other = m.groups()
        if number is not None:
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
        if tok == ("op", "-"):
            take()
            return ("neg", unary())
        if tok == ("op", "+"):
            take()
            return unary()
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
            node = expr()
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
    return node


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
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "name":
        value = lookup(node[1])
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], (Decimal, int, float)):
            value = Decimal(str(value[0]))  # a one-item YAML list is that item
        if not isinstance(value, Decimal):
            raise ValueError(f"{node[1]} is {value!r}, not a number")
        return value
    if kind == "neg":
        return -evaluate_node(node[1], lookup)
    left = evaluate_node(node[1], lookup)
    right = evaluate_node(node[2], lookup)
    if kind == "+":
        return left + right
    if kind == "-":
        return left - right
    if kind == "*":
        return left * right
    if right == 0:
        raise ValueError("division by zero")
    return left / right


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


def load_text(text: str, path: str = "<text>") -> OwrsFile:
    try:
        doc = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise OwrsError(f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}", file=path) from exc
    if not isinstance(doc, dict):
        raise OwrsError("the file is not an OWRS document (no top-level mapping)", file=path)
    structure = doc.get("rate_structure")
    if not isinstance(structure, dict) or not structure:
        raise OwrsError("there is no rate_structure with customer classes", file=path)
    classes: dict[str, dict[str, Any]] = {}
    for name, body in structure.items():
        if not isinstance(body, dict):
            raise OwrsError("a customer class must be a mapping of rate parts", file=path, cust_class=str(name))
        classes[str(name)] = body
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
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
            return raw
        if isinstance(raw, (int,)) and not isinstance(raw, bool):
            return Decimal(raw)
        text = str(raw).strip()
        try:
            return Decimal(text)
        except InvalidOperation:
            return text

    def number(self, name: str, suffix: str | None = None) -> Decimal:
        value = self.value(name, suffix)
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], (int, float)):
            value = Decimal(str(value[0]))
        if not isinstance(value, Decimal):
            raise self.error(f"{name} is {value!r}, where a number is needed", name)
        return value

    # -- parts ----------------------------------------------------------------
    def compute(self, key: str, raw: Any, suffix: str | None) -> Any:
        if isinstance(raw, bool):
            raise self.error("a true/false value where a number or formula is needed", key)
        if isinstance(raw, (int, float)):
            return Decimal(str(raw))
        if isinstance(raw, dict):
            return self.compute(key, self.lookup_map(key, raw), suffix)
        if isinstance(raw, list):
            return raw
        if raw is None:
            raise self.error("has no value", key)
        text = str(raw).strip()
        if text in RATE_TYPES:
            return self.tiered_charge(key, text, suffix)
        return self.formula_value(key, text, suffix)

    def formula_value(self, key: str, text: str, suffix: str | None) -> Decimal:
        try:
            node = self.file.formula(text)
        except (ValueError, InvalidOperation) as exc:
            raise self.error(f"cannot read formula {text!r}: {exc}", key) from exc
        try:
            return evaluate_node(node, lambda n: self.value(n, suffix))
        except (ValueError, DivisionByZero, InvalidOperation) as exc:
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
        if isinstance(item, (int, float)):
            return Decimal(str(item))
        text = str(item).strip()
        if _is_number(text):
            return Decimal(text)
        return self.formula_value(key, text, suffix)

    def budget_start(self, start: str, suffix: str | None, key: str) -> Decimal:
        text = start.strip()
        if text.endswith("%"):
            try:
                share = Decimal(text[:-1].strip()) / HUNDRED
            except InvalidOperation as exc:
                raise self.error(f"cannot read tier start {start!r}", key) from exc
            return round_allocation(share * self.budget_total(suffix, key))
        return round_allocation(self.formula_value(key, text, suffix))

    def budget_total(self, suffix: str | None, key: str) -> Decimal:
        if "budget" in self.data:
            return round_allocation(self.number("budget"))
        found = self.resolve("budget", suffix)
        if found is None:
            raise self.error("percentage tier starts need a budget", key)
        name, raw = found
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return round_allocation(Decimal(str(raw)))
        if isinstance(raw, dict):
            raw = self.lookup_map(name, raw)
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                return round_allocation(Decimal(str(raw)))
        try:
            node = self.file.formula(str(raw))
        except (ValueError, InvalidOperation) as exc:
            raise self.error(f"cannot read formula {raw!r}: {exc}", name) from exc
        total = Decimal(0)
        try:
            for sign, term in sum_terms(node):
                total += sign * round_allocation(evaluate_node(term, lambda n: self.value(n, suffix)))
        except (ValueError, DivisionByZero, InvalidOperation) as exc:
            raise self.error(f"cannot compute {raw!r}: {exc}", name) from exc
        return total

    # -- the bill ---------------------------------------------------------------
    def quote(self) -> Quote:
        bill_raw = self.body.get("bill")
        if bill_raw is None:
            raise self.error("the class has no bill formula", "bill")
        if isinstance(bill_raw, (int, float)) and not isinstance(bill_raw, bool):
            amount = Decimal(str(bill_raw))
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
            except (ValueError, DivisionByZero, InvalidOperation) as exc:
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


def _is_number(text: str) -> bool:
    try:
        Decimal(str(text).strip())
        return True
    except InvalidOperation:
        return False


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
    rounded = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return str(rounded if rounded != 0 else Decimal("0.00"))  # never "-0.00"


def check_class(file: OwrsFile, cust_class: str) -> list[OwrsError]:
    """Static checks of one class: every formula parses, maps are well formed,
    Tiered/Budget charges have matching starts and prices."""
    problems: list[OwrsError] = []
    body = file.classes[cust_class]

    def err(message: str, name: str) -> None:
        problems.append(OwrsError(message, file=file.path, cust_class=cust_class, field_name=name))

    if "bill" not in body:
        err("the class has no bill formula", "bill")
    for name, raw in body.items():
        for text in formula_texts(raw):
            try:
                file.formula(text)
            except (ValueError, InvalidOperation) as exc:
                err(f"cannot read formula {text!r}: {exc}", name)
        if isinstance(raw, dict):
            is_range = _range_key(raw) is not None and isinstance(raw.get("values"), list)
            if "depends_on" not in raw or not (isinstance(raw.get("values"), dict) or is_range):
                err("a map needs depends_on and values keyed by the data's values", name)
    return problems


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
