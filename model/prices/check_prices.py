#!/usr/bin/env python3
"""Validate model/prices/prices.json (or imported.json) against the Tollgate price-table schema.

Mirrors the loader's rules (serde with deny_unknown_fields):
  * valid JSON, no duplicate object keys
  * no unknown field names at any level; required fields present
  * every price is a JSON *string* holding a plain non-negative decimal
  * unique ids, unique aliases, no alias equal to an id
  * prices sorted by effective_from (strictly ascending), valid YYYY-MM-DD dates
  * at least MIN_MODELS models
  * imported.json (written by scripts/refresh-prices.sh): table_version is "<date> <package>",
    each source names the package, file and key it came from, each note starts with
    "imported", and no id or alias is a name prices.json already carries (those win)

Usage: python3 model/prices/check_prices.py [path/to/prices.json | path/to/imported.json]
Exit status 0 = OK, 1 = errors found. Warnings never fail the run.
"""
import datetime
import json
import re
import sys
from collections import Counter
from decimal import Decimal, InvalidOperation
from pathlib import Path

MIN_MODELS = 85
PROVIDERS = {"openai", "anthropic", "google", "mistral", "cohere", "groq",
             "deepseek", "xai", "bedrock", "meta"}
IMPORTED_PROVIDERS = {"openai", "anthropic", "google", "mistral", "bedrock", "vertex_ai",
                      "azure", "azure_openai"}
IMPORTED_SOURCE_RE = re.compile(r"^\S+==\S+ \S+: \S+$")

TOP_REQUIRED = {"schema_version", "table_version", "currency",
                "default_max_output_tokens", "models"}
TOP_ALLOWED = TOP_REQUIRED

MODEL_REQUIRED = {"id", "provider", "source", "checked", "prices"}
MODEL_ALLOWED = MODEL_REQUIRED | {"aliases", "default_max_output_tokens", "note"}

PRICE_REQUIRED = {"effective_from", "input", "output"}
PRICE_DECIMALS = {"input", "cached_input", "cache_write_5m", "cache_write_1h",
                  "output", "reasoning", "audio_input", "audio_output", "per_request",
                  "per_web_search", "per_image", "per_audio_minute", "batch_multiplier",
                  "priority_multiplier"}
PRICE_ALLOWED = PRICE_REQUIRED | PRICE_DECIMALS | {"long_context"}

LC_REQUIRED = {"threshold_input_tokens", "input", "output"}
LC_DECIMALS = {"input", "cached_input", "cache_write_5m", "cache_write_1h", "output"}
LC_ALLOWED = LC_REQUIRED | LC_DECIMALS

DECIMAL_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Models that must carry a long-context tier at 200K input tokens.
NEED_LC_200K = {"gemini-2.5-pro", "claude-sonnet-4", "claude-sonnet-4-5"}

errors = []
warnings = []


def err(where, msg):
    errors.append(f"{where}: {msg}")


def warn(where, msg):
    warnings.append(f"{where}: {msg}")


def no_dup_keys(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"duplicate key {k!r}")
        seen[k] = v
    return seen


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_keys(where, obj, required, allowed):
    if not isinstance(obj, dict):
        err(where, f"expected an object, got {type(obj).__name__}")
        return False
    for k in sorted(set(obj) - allowed):
        err(where, f"unknown field {k!r}")
    for k in sorted(required - set(obj)):
        err(where, f"missing required field {k!r}")
    return True


def check_decimal(where, field, value):
    """Return the Decimal value, or None after recording an error."""
    if not isinstance(value, str):
        err(where, f"{field} must be a JSON string holding a decimal, got {type(value).__name__} {value!r}")
        return None
    if not DECIMAL_RE.match(value):
        err(where, f"{field}={value!r} is not a plain non-negative decimal (digits[.digits])")
        return None
    try:
        d = Decimal(value)
    except InvalidOperation:
        err(where, f"{field}={value!r} is not parseable by decimal.Decimal")
        return None
    if d < 0:
        err(where, f"{field}={value!r} is negative")
        return None
    return d


def check_date(where, field, value):
    if not isinstance(value, str) or not DATE_RE.match(value):
        err(where, f"{field}={value!r} is not a YYYY-MM-DD string")
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        err(where, f"{field}={value!r} is not a valid calendar date")
        return None


def check_long_context(where, lc):
    if not check_keys(where, lc, LC_REQUIRED, LC_ALLOWED):
        return
    th = lc.get("threshold_input_tokens")
    if not is_int(th) or th <= 0:
        err(where, f"threshold_input_tokens must be a positive integer, got {th!r}")
    for f in LC_DECIMALS & set(lc):
        check_decimal(where, f, lc[f])


def check_price(where, p, provider):
    if not check_keys(where, p, PRICE_REQUIRED, PRICE_ALLOWED):
        return None
    eff = check_date(where, "effective_from", p.get("effective_from"))
    vals = {}
    for f in PRICE_DECIMALS & set(p):
        vals[f] = check_decimal(where, f, p[f])
    for f in ("batch_multiplier", "priority_multiplier"):
        if vals.get(f) is not None and vals[f] == 0:
            err(where, f"{f} must be > 0")
    if "long_context" in p:
        check_long_context(f"{where}.long_context", p["long_context"])
    if provider == "anthropic":
        for f in ("cached_input", "cache_write_5m", "cache_write_1h"):
            if f not in p:
                err(where, f"anthropic price entry lacks {f}")
        inp = vals.get("input")
        if inp is not None and inp > 0:
            for f, ratio in (("cached_input", Decimal("0.1")),
                             ("cache_write_5m", Decimal("1.25")),
                             ("cache_write_1h", Decimal("2"))):
                v = vals.get(f)
                if v is not None and v != inp * ratio:
                    warn(where, f"{f}={p[f]} is not {ratio}x input ({inp}) - check it is the published figure")
    return eff


def main(path):
    imported = Path(path).name == "imported.json"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        print(f"ERROR: cannot read {path}: {e}")
        return 1
    try:
        doc = json.loads(text, object_pairs_hook=no_dup_keys)
    except ValueError as e:
        print(f"ERROR: invalid JSON in {path}: {e}")
        return 1

    if not check_keys("<root>", doc, TOP_REQUIRED, TOP_ALLOWED):
        return report()
    if doc.get("schema_version") != 1 or not is_int(doc.get("schema_version")):
        err("<root>", f"schema_version must be the integer 1, got {doc.get('schema_version')!r}")
    tv = doc.get("table_version")
    if imported:
        if not isinstance(tv, str) or " " not in tv:
            err("<root>", f"table_version must be '<date> <package>==<version>', got {tv!r}")
        else:
            check_date("<root>", "table_version's date", tv.split(" ", 1)[0])
    else:
        check_date("<root>", "table_version", tv)
    if doc.get("currency") != "USD":
        err("<root>", f"currency must be 'USD', got {doc.get('currency')!r}")
    dmo = doc.get("default_max_output_tokens")
    if not is_int(dmo) or dmo <= 0:
        err("<root>", f"default_max_output_tokens must be a positive integer, got {dmo!r}")

    models = doc.get("models")
    if not isinstance(models, list):
        err("<root>", "models must be an array")
        return report()

    ids = Counter()
    aliases = Counter()
    per_provider = Counter()
    for i, m in enumerate(models):
        where = f"models[{i}]"
        if not check_keys(where, m, MODEL_REQUIRED, MODEL_ALLOWED):
            continue
        mid = m.get("id")
        if not isinstance(mid, str) or not mid:
            err(where, f"id must be a non-empty string, got {mid!r}")
            continue
        where = f"models[{i}] ({mid})"
        ids[mid] += 1
        if mid != mid.lower() or mid != mid.strip():
            err(where, "id must be lowercase with no surrounding whitespace")
        prov = m.get("provider")
        allowed = IMPORTED_PROVIDERS if imported else PROVIDERS
        if prov not in allowed:
            err(where, f"provider {prov!r} not in {sorted(allowed)}")
        else:
            per_provider[prov] += 1
        src = m.get("source")
        if imported:
            if not isinstance(src, str) or not IMPORTED_SOURCE_RE.match(src):
                err(where, f"source must be '<package>==<version> <file>: <key>', got {src!r}")
            if not str(m.get("note", "")).startswith("imported"):
                err(where, "note must start with 'imported'")
        elif not isinstance(src, str) or not re.match(r"^https?://\S+$", src):
            err(where, f"source must be a URL, got {src!r}")
        check_date(where, "checked", m.get("checked"))
        if "note" in m and not isinstance(m["note"], str):
            err(where, "note must be a string")
        if "default_max_output_tokens" in m:
            v = m["default_max_output_tokens"]
            if not is_int(v) or v <= 0:
                err(where, f"default_max_output_tokens must be a positive integer, got {v!r}")
        if "aliases" in m:
            al = m["aliases"]
            if not isinstance(al, list) or not all(isinstance(a, str) and a for a in al):
                err(where, "aliases must be an array of non-empty strings")
            else:
                for a in al:
                    aliases[a] += 1
                    if a != a.lower():
                        warn(where, f"alias {a!r} is not lowercase")
        prices = m.get("prices")
        if not isinstance(prices, list) or not prices:
            err(where, "prices must be a non-empty array")
            continue
        prev = None
        for j, p in enumerate(prices):
            eff = check_price(f"{where}.prices[{j}]", p, prov)
            if eff is not None and prev is not None and eff <= prev:
                err(f"{where}.prices[{j}]", "prices must be sorted by effective_from, strictly ascending")
            if eff is not None:
                prev = eff
        if mid in NEED_LC_200K:
            last = prices[-1] if isinstance(prices[-1], dict) else {}
            lc = last.get("long_context")
            if not isinstance(lc, dict) or lc.get("threshold_input_tokens") != 200000:
                err(where, "latest price entry needs a long_context tier at threshold_input_tokens=200000")

    for k, n in ids.items():
        if n > 1:
            err("<models>", f"duplicate id {k!r} ({n}x)")
    for a, n in aliases.items():
        if n > 1:
            err("<models>", f"duplicate alias {a!r} ({n}x)")
        if a in ids:
            err("<models>", f"alias {a!r} collides with a model id")
    if imported:
        shipped = json.loads((Path(path).resolve().parent / "prices.json").read_text(encoding="utf-8"))
        names = {m["id"] for m in shipped["models"]}
        names |= {a for m in shipped["models"] for a in m.get("aliases", [])}
        for k in sorted((set(ids) | set(aliases)) & names):
            err("<models>", f"{k!r} is a name prices.json carries: Tollgate's entry wins, drop it")
    elif len(models) < MIN_MODELS:
        err("<models>", f"only {len(models)} models, need at least {MIN_MODELS}")

    print(f"{path}: {len(models)} models, {sum(aliases.values())} aliases")
    for prov, n in sorted(per_provider.items()):
        print(f"  {prov:10s} {n}")
    return report()


def report():
    for w in warnings:
        print(f"WARNING: {w}")
    for e in errors:
        print(f"ERROR: {e}")
    if errors:
        print(f"FAILED: {len(errors)} error(s), {len(warnings)} warning(s)")
        return 1
    print(f"OK ({len(warnings)} warning(s))")
    return 0


if __name__ == "__main__":
    default = Path(__file__).resolve().parent / "prices.json"
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(default)))
