#!/usr/bin/env python3
"""Generate config/agents.yaml: 300 agents at six sites, deterministically.

Entity and sector ids come from config/hotline.yaml, so re-run this whenever
the menu changes. Every entity/language pair gets at least MIN_COVER agents
who speak the language and serve the entity directly (routing step 0), so no
caller depends on the widening steps just because of staffing.

    python scripts/gen_agents.py [--config config/hotline.yaml] [--wait SECONDS]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ari_app.config.loader import load_config  # noqa: E402
from ari_app.config.models import HotlineConfig  # noqa: E402

SEED = 109
MIN_COVER = 2
SITES = [  # id, name, agents
    ("doha_hq", "Doha headquarters (West Bay)", 90),
    ("al_rayyan", "Al Rayyan", 60),
    ("al_wakrah", "Al Wakrah", 45),
    ("lusail", "Lusail", 45),
    ("al_khor", "Al Khor", 35),
    ("dukhan", "Dukhan", 25),
]
# Spoken-language mixes and their weight among agents; all include ar or en.
PROFILES: list[tuple[tuple[str, ...], int]] = [
    (("ar", "en"), 44),
    (("ar",), 10),
    (("en",), 4),
    (("ar", "en", "ur"), 6),
    (("en", "ur", "hi"), 8),
    (("en", "hi"), 4),
    (("ar", "en", "hi"), 1),
    (("en", "ml"), 5),
    (("en", "ml", "hi"), 2),
    (("en", "bn"), 4),
    (("en", "ne", "hi"), 4),
    (("en", "ta"), 3),
    (("en", "si"), 3),
    (("ar", "en", "ml"), 2),
]
FIRST = {
    "ar": [
        "Ahmed",
        "Fatima",
        "Mohammed",
        "Aisha",
        "Khalid",
        "Maryam",
        "Abdullah",
        "Noora",
        "Hamad",
        "Sara",
        "Jassim",
        "Hessa",
        "Ali",
        "Latifa",
        "Omar",
        "Moza",
        "Yousef",
        "Amna",
        "Saad",
        "Reem",
    ],
    "ur": ["Imran", "Ayesha", "Bilal", "Sana", "Usman", "Hina", "Faisal", "Nadia"],
    "hi": ["Rahul", "Priya", "Amit", "Neha", "Vikram", "Pooja", "Sanjay", "Anjali"],
    "ml": ["Anil", "Divya", "Suresh", "Lakshmi", "Biju", "Reshma", "Shaji", "Anitha"],
    "bn": ["Rafiq", "Nusrat", "Tanvir", "Shirin", "Habib", "Farzana"],
    "ne": ["Bikash", "Sita", "Ramesh", "Gita", "Suman", "Sunita"],
    "ta": ["Karthik", "Meena", "Senthil", "Kavitha", "Murugan", "Revathi"],
    "si": ["Nuwan", "Dilani", "Kasun", "Chamari", "Ruwan", "Sanduni"],
    "en": ["John", "Mary", "Daniel", "Grace", "Peter", "Ruth", "Mark", "Joy"],
}
LAST = {
    "ar": [
        "Al-Kuwari",
        "Al-Thani",
        "Al-Marri",
        "Al-Sulaiti",
        "Al-Emadi",
        "Al-Naimi",
        "Al-Hajri",
        "Al-Mohannadi",
        "Al-Khulaifi",
        "Al-Dosari",
    ],
    "ur": ["Khan", "Qureshi", "Malik", "Butt"],
    "hi": ["Sharma", "Verma", "Gupta", "Patel"],
    "ml": ["Nair", "Menon", "Pillai", "Thomas"],
    "bn": ["Rahman", "Hossain", "Islam", "Chowdhury"],
    "ne": ["Thapa", "Gurung", "Shrestha", "Tamang"],
    "ta": ["Subramaniam", "Rajan", "Krishnan", "Pandian"],
    "si": ["Perera", "Fernando", "Silva", "Jayasuriya"],
    "en": ["Fernandes", "DSouza", "Reyes", "Santos"],
}


def load_menu_config(path: Path) -> HotlineConfig:
    """The config without its agents, so a stale agents.yaml never blocks regeneration."""
    data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    data = dict(data)
    data.pop("agents_file", None)
    data.pop("agents", None)
    data["source"] = str(path.resolve())
    return HotlineConfig.model_validate(data)


def generate(cfg: HotlineConfig) -> dict[str, Any]:
    rng = random.Random(SEED)
    codes = {lang.code for lang in cfg.languages}
    entities = [e for e in cfg.entities]
    sectors: dict[str | None, list[str]] = {}
    for e in entities:
        sectors.setdefault(cfg.sector_of(e.id), []).append(e.skill_name)
    sector_ids = [s for s in sectors if s is not None]
    weights = [len(sectors[s]) for s in sector_ids]
    profiles = [p for p, _ in PROFILES]
    pweights = [w for _, w in PROFILES]

    agents: list[dict[str, Any]] = []
    home: dict[str, str | None] = {}
    n = 0
    for site, _name, count in SITES:
        for _ in range(count):
            n += 1
            aid = f"a{n:03d}"
            langs = [c for c in rng.choices(profiles, pweights)[0] if c in codes]
            if not langs:
                langs = [cfg.default_language]
            origin = next((c for c in langs if c not in ("ar", "en")), langs[0])
            name = f"{rng.choice(FIRST[origin])} {rng.choice(LAST[origin])}"
            skills: list[str] = []
            sector: str | None = None
            if rng.random() < 0.08 or not sector_ids:  # generalists: 'other' and a spread
                skills.append(cfg.other_departments.skill_name)
                skills += rng.sample([e.skill_name for e in entities], 3)
            else:
                sector = rng.choices(sector_ids, weights)[0]
                own = sectors[sector]
                skills.append(sector)
                skills += rng.sample(own, min(len(own), rng.randint(2, 4)))
            home[aid] = sector
            agents.append(
                {
                    "id": aid,
                    "name": name,
                    "site": site,
                    "endpoint": f"agent-{aid}",
                    "languages": langs,
                    "skills": list(dict.fromkeys(skills)),
                }
            )

    # Coverage: every entity/language pair served directly by MIN_COVER agents.
    for e in entities:
        sector = cfg.sector_of(e.id)
        for code in sorted(codes):
            have = [a for a in agents if code in a["languages"] and e.skill_name in a["skills"]]
            need = MIN_COVER - len(have)
            pool = [a for a in agents if code in a["languages"] and a not in have]
            pool.sort(key=lambda a: (home[a["id"]] != sector, len(a["skills"]), a["id"]))
            for a in pool[: max(0, need)]:
                a["skills"].append(e.skill_name)

    for a in agents:
        direct = [s for s in a["skills"] if s not in sector_ids]
        if rng.random() < 0.5 and direct:
            a["proficiency"] = {s: rng.randint(4, 10) for s in direct[:2]}
    return {"agents": agents}


def dump(doc: dict[str, Any], cfg: HotlineConfig) -> str:
    head = (
        "# Hotline 109 agents: generated by scripts/gen_agents.py from config/hotline.yaml\n"
        f"# ({len(cfg.entities)} entities, {len(cfg.languages)} languages). Re-run it rather\n"
        "# than editing by hand when the menu changes. Sites are in hotline.yaml.\n"
    )
    lines = [head, "agents:\n"]
    for a in doc["agents"]:
        lines.append(
            "  - "
            + yaml.safe_dump(
                a, default_flow_style=True, sort_keys=False, allow_unicode=True, width=10_000
            ).strip()
            + "\n"
        )
    return "".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "hotline.yaml")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--wait", type=float, default=0, help="seconds to wait for 34 entities")
    ap.add_argument("--entities", type=int, default=34)
    args = ap.parse_args()
    deadline = time.monotonic() + args.wait
    while True:
        try:
            cfg = load_menu_config(args.config)
            if len(cfg.entities) >= args.entities or time.monotonic() > deadline:
                break
            print(f"{len(cfg.entities)} entities so far; waiting", file=sys.stderr)
        except Exception as e:  # mid-edit by someone else: try again
            if time.monotonic() > deadline:
                raise
            print(f"config not loadable yet: {e}", file=sys.stderr)
        time.sleep(30)
    if len(cfg.entities) != args.entities:
        print(f"warning: {len(cfg.entities)} entities, expected {args.entities}", file=sys.stderr)
    want = [(s, name) for s, name, _ in SITES]
    have = [(s.id, s.name) for s in cfg.sites]
    if have and have != want:
        print(f"warning: hotline.yaml sites {have} differ from {want}", file=sys.stderr)
    doc = generate(cfg)
    out = args.out or args.config.parent / "agents.yaml"
    out.write_text(dump(doc, cfg), encoding="utf-8")
    print(f"wrote {out}: {len(doc['agents'])} agents")
    if cfg.sites:  # sites are declared: validate the whole thing as the app will
        full = load_config(args.config)
        print(f"validated: {len(full.agents)} agents, {len(full.sites)} sites")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
