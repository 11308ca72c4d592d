"""One line per pydantic validation error, shared by the deployment config
(scripts/config.py) and the scenario files (scripts/scenario.py): a command
that reads a file answers a bad value with the place and what it must be,
never with pydantic's multi-line report."""

import difflib

# pydantic error types -> what the value must be
_MUST_BE = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "bool_type": "true or false", "string_type": "a string",
    "model_type": "a mapping", "model_attributes_type": "a mapping", "dict_type": "a mapping",
    "list_type": "a list",
}
_BOUND = {"greater_than_equal": ("ge", "must be at least"), "greater_than": ("gt", "must be above"),
          "less_than_equal": ("le", "must be at most"), "less_than": ("lt", "must be below")}


def unknown_key(where, key, known):
    """'<where>: unknown key 'x' (did you mean 'y'?)' with the known keys when nothing is close."""
    guess = difflib.get_close_matches(str(key), known, n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else (f" (known keys: {', '.join(known)})" if known else "")
    return (f"{where}: " if where else "") + f"unknown key {key!r}{hint}"


def explain(err, where):
    """The error's kind in words after `where`: missing, wrong type, out of
    bounds, or the validator's own message."""
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return f"{where} is missing"
    if kind in _MUST_BE:
        return f"{where} must be {_MUST_BE[kind]}, got {value!r}"
    if kind == "too_short":
        return f"{where} must have at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"{where} must have at most {ctx.get('max_length')} item(s)"
    if kind in _BOUND:
        key, words = _BOUND[kind]
        msg = f"{words} {ctx[key]}"
    else:
        msg = err["msg"].removeprefix("Value error, ")
        if msg[1:2].islower():  # "Must ..." but not "BTC-PERP: ..."
            msg = msg[0].lower() + msg[1:]
    return f"{where} {value!r} {msg}" if not isinstance(value, (dict, list)) else f"{where} {msg}".lstrip()
