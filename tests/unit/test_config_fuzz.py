"""Issue 6: any config file, however broken, gives ConfigError with a clear message.

Never a traceback. Hypothesis mutates the shipped config's dict (delete a key, replace a value with
something of another type, add an unknown key, nest garbage) and writes it out;
`load_config` must either return a config or raise ConfigError naming the file.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ari_app.config.loader import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((ROOT / "config/hotline.yaml").read_text(encoding="utf-8"))
# the agents file is resolved against the config's directory; inline it so tmp files load
_agents = yaml.safe_load((ROOT / "config" / SHIPPED["agents_file"]).read_text(encoding="utf-8")) \
    if SHIPPED.get("agents_file") else None
BASE = dict(SHIPPED)
if _agents is not None:
    BASE.pop("agents_file")
    BASE["agents"] = _agents["agents"] if isinstance(_agents, dict) else _agents
BASE["prompts_dir"] = str(ROOT / "config" / SHIPPED.get("prompts_dir", "prompts"))

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["", "0", "-1", "1e309", "{env: X}", "../../etc/passwd", "\x00", "٣",
                     "redis://", "http://[::1", "2" * 300]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):  # the first few items of long lists are enough
            out.extend(_paths(v, (*prefix, i)))
    return out


PATHS = _paths(BASE)


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    data: Any = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        if not isinstance(data, dict | list):
            break
        path = draw(st.sampled_from(PATHS))
        parent: Any = data
        try:
            for p in path[:-1]:
                parent = parent[p]
            last = path[-1]
            parent[last]
        except (KeyError, IndexError, TypeError):
            continue
        op = draw(st.sampled_from(["delete", "replace", "add_key", "wrap"]))
        if op == "delete":
            del parent[last]
        elif op == "replace":
            parent[last] = draw(values)
        elif op == "add_key" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
        else:
            parent[last] = [parent[last]]
    if draw(st.integers(0, 30)) == 0:
        data = draw(values)  # the whole file is something else
    return data


def _write(data: Any) -> Path:
    d = Path(tempfile.mkdtemp(prefix="cfgfuzz-"))
    p = d / "hotline.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return p


def test_the_base_config_loads() -> None:
    assert load_config(_write(BASE)).languages


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_config_loads_or_gives_config_error(data: Any) -> None:
    path = _write(data)
    try:
        load_config(path)
    except ConfigError as e:
        msg = str(e)
        assert msg.startswith(str(path)), msg
        assert "Traceback" not in msg
        assert len(msg.splitlines()) >= 1 and msg.strip()


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_give_config_error(raw: bytes) -> None:
    d = Path(tempfile.mkdtemp(prefix="cfgfuzz-"))
    p = d / "hotline.yaml"
    p.write_bytes(raw)
    try:
        load_config(p)
    except ConfigError as e:
        assert str(e).startswith(str(p))


@pytest.mark.parametrize("text", [
    "a: &a [*a]\n",  # a self-referencing alias
    "languages: &a [*a]\nmenu: &m {options: [*m]}\n",
    "x: " + "[" * 2000 + "]" * 2000 + "\n",  # deep nesting
    "languages: !!python/object/apply:os.system ['true']\n",  # unsafe tag
    "\ufeffari: {}\n",
    "ari:\n  url: 1\n  url: 2\n",
])
def test_nasty_yaml_gives_config_error(text: str, tmp_path: Path) -> None:
    p = tmp_path / "hotline.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(p)
