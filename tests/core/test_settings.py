"""autoresearch.toml's settings: every wrong value is one line that names its key, and the JSON schema
(`autoresearch schema`) accepts every file the project writes and refuses a broken one.

The cases are generated from the schema itself, so a setting added later is tested without a line
written for it: for every table and every key, a wrong type, a value out of range, an unknown value
of an enum, and an unknown key.
"""

from __future__ import annotations

import copy
import json
import subprocess
import tomllib

import pytest

from autoresearch.core.settings import json_schema
from autoresearch.core.task import ConfigError, parse_task
from autoresearch.interfaces.cli import main
from autoresearch.store.adopt import AdoptOptions, plan
from autoresearch.store.templates import load_presets, render_llm_config, template_dir

jsonschema = pytest.importorskip("jsonschema")

SCHEMA = json_schema()
MINIMAL = {"task": {"command": ["{python}", "train.py"]}, "budget": {"value": 60}}
WRONG_TYPE = {"number": "fast", "integer": "many", "string": 12, "boolean": "yes", "array": 5, "object": 5}


def _resolve(prop: dict) -> dict:
    """A property's schema without the optional (null) branch or a reference."""
    if "$ref" in prop:
        return SCHEMA["$defs"][prop["$ref"].split("/")[-1]]
    branches = [b for b in prop.get("anyOf", []) if b.get("type") != "null"]
    return _resolve(branches[0]) if len(branches) == 1 else prop


def _tables() -> dict[str, dict]:
    """Each table of the file with its schema ([agent] as a table; [knobs] has free keys)."""
    tables = {}
    for name, prop in SCHEMA["properties"].items():
        found = _resolve(prop) if "anyOf" not in prop else _resolve(prop["anyOf"][0])
        if found.get("properties"):
            tables[name] = found
    return tables


TABLES = _tables()


def _cases() -> list[tuple[str, str, str, object]]:
    """(kind, table, key, value) for every key of every table."""
    cases = []
    for table, schema in TABLES.items():
        cases.append(("unknown key", table, "no_such_setting", 1))
        for key, prop in schema["properties"].items():
            prop = _resolve(prop)
            kind = prop.get("type") or next((b["type"] for b in prop.get("anyOf", []) if "type" in b), None)
            if "enum" in prop:
                cases.append(("unknown enum value", table, key, "no-such-choice"))
            elif kind in WRONG_TYPE:
                cases.append(("wrong type", table, key, WRONG_TYPE[kind]))
            for bound, step in (("minimum", -1), ("exclusiveMinimum", 0), ("maximum", 1), ("exclusiveMaximum", 0)):
                if bound in prop:
                    value = prop[bound] + step if bound != "exclusiveMinimum" else prop[bound] - 1
                    value = prop[bound] + 1 if bound == "exclusiveMaximum" else value
                    cases.append(("out of range", table, key, value if kind != "integer" else int(value)))
            items = _resolve(prop.get("items", {})) if kind == "array" else {}
            if "exclusiveMaximum" in items:
                cases.append(("out of range", table, key, [items["exclusiveMaximum"] + 1]))
    return cases


CASES = _cases()


def test_the_cases_cover_every_kind_and_every_table():
    kinds = {c[0] for c in CASES}
    assert kinds == {"unknown key", "unknown enum value", "wrong type", "out of range"}
    assert {c[1] for c in CASES} == {"task", "budget", "data", "agent", "judge", "evaluation", "sandbox",
                                     "early_abort", "study"}
    assert len(CASES) > 100


@pytest.mark.parametrize("kind,table,key,value", CASES, ids=lambda v: str(v))
def test_a_wrong_setting_is_one_line_naming_its_key(kind, table, key, value):
    raw = copy.deepcopy(MINIMAL)
    raw.setdefault(table, {})[key] = value
    with pytest.raises(ConfigError) as caught:
        parse_task(raw)
    message = str(caught.value)
    assert "\n" not in message
    assert f"[{table}] {key}" in message, message
    if kind == "unknown key":
        assert "unknown setting; known:" in message
    if kind == "unknown enum value":
        assert "must be one of" in message and "no-such-choice" in message


@pytest.mark.parametrize("key,value", [("temperature", "hot"), ("max_fix_attempts", -1), ("provider", "x")])
def test_each_agent_table_is_checked_and_named(key, value):
    raw = {**MINIMAL, "agent": [{"provider": "random"}, {key: value}]}
    with pytest.raises(ConfigError, match=rf"^autoresearch.toml: \[\[agent\]\] 2 {key}"):
        parse_task(raw)


def test_the_issue_examples_and_an_unknown_table():
    with pytest.raises(ConfigError, match=r"\[judge\] z: must be a number, not 'high'$"):
        parse_task({**MINIMAL, "judge": {"z": "high"}})
    with pytest.raises(ConfigError, match=r"\[agent\] temperature: must be a number, not 'hot'$"):
        parse_task({**MINIMAL, "agent": {"temperature": "hot"}})
    with pytest.raises(ConfigError, match=r"\[studdy\]: unknown table; known: agent, budget, .*study, task$"):
        parse_task({**MINIMAL, "studdy": {}})


def test_every_setting_of_the_study_is_reachable_from_the_file():
    task = parse_task({**MINIMAL, "study": {"explore": 0.5, "stagnation_after": 3, "max_idle_proposals": 4,
                                            "failure_backoff_s": 0.5, "top_k": 2, "max_cost_usd": 1.5}})
    assert (task.study.explore, task.study.stagnation_after, task.study.max_idle_proposals,
            task.study.failure_backoff_s, task.study.top_k, task.study.max_cost_usd) == (0.5, 3, 4, 0.5, 2, 1.5)


# -- the JSON schema --------------------------------------------------------------------------------
def _project_files() -> dict[str, dict]:
    files = {"tiny": tomllib.loads((template_dir("tiny") / "autoresearch.toml").read_text())}
    for name, preset in load_presets().items():
        files[f"llm --preset {name}"] = tomllib.loads(render_llm_config(preset))
    adopted = AdoptOptions("python train.py --lr=0.01", "val_loss", "", "minimize", [], [], None, None, None,
                           ["lr=0.01 float 1e-4..1e-1 log"])
    return files, adopted


def test_the_schema_accepts_every_template_preset_and_adopted_file(tmp_path):
    files, adopted = _project_files()
    (tmp_path / "train.py").write_text("import argparse\n")
    for command in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *command], cwd=tmp_path, check=True)
    files["adopted"] = tomllib.loads(plan(tmp_path, adopted).toml)
    for name, raw in files.items():
        jsonschema.validate(raw, SCHEMA)  # raises with the path of what is wrong
        parse_task(raw)  # and the harness reads it the same way
    assert len(files) == 6


@pytest.mark.parametrize("broken", [{"judge": {"z": "high"}}, {"judge": {"zz": 1}}, {"sandbox": {"kind": "docker"}},
                                    {"budget": {"value": -1}}, {"studdy": {}}, {"agent": {"temperature": 3}},
                                    {"early_abort": {"checkpoints": [0.5, 1.5]}}])
def test_the_schema_refuses_a_broken_file(broken):
    files, _ = _project_files()
    raw = copy.deepcopy(files["tiny"])
    for table, values in broken.items():
        raw.setdefault(table, {}).update(values)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(raw, SCHEMA)
    with pytest.raises(ConfigError):
        parse_task(raw)


def test_the_schema_command_prints_it_and_workspaces_point_to_it(tmp_path, capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == SCHEMA
    assert main(["init", str(tmp_path / "ws"), "--template", "tiny"]) == 0
    first_line = (tmp_path / "ws" / "autoresearch.toml").read_text().splitlines()[0]
    assert first_line == "#:schema ./.autoresearch/autoresearch.schema.json"
    assert json.loads((tmp_path / "ws" / ".autoresearch" / "autoresearch.schema.json").read_text()) == SCHEMA


def test_a_wrong_flag_of_run_is_one_line_naming_the_flag(tiny_workspace, capsys):
    assert main(["run", "-C", str(tiny_workspace), "--top-k", "0"]) == 1
    assert capsys.readouterr().err.strip() == "autoresearch: --top-k must be >= 1, not 0"
    assert main(["run", "-C", str(tiny_workspace), "--explore", "1.5"]) == 1
    assert capsys.readouterr().err.strip() == "autoresearch: --explore must be <= 1, not 1.5"


def test_run_follows_the_files_study_table_and_a_flag_wins(tiny_workspace, capsys):
    toml = tiny_workspace / "autoresearch.toml"
    toml.write_text(toml.read_text() + "\n[study]\nmax_experiments = 1\n")
    subprocess.run(["git", "-C", str(tiny_workspace), "commit", "-qam", "[study]"], check=True)
    assert main(["run", "-C", str(tiny_workspace), "--provider", "random", "--plain"]) == 0
    assert "stopped: ran 1 experiments (--max-experiments). 1 experiments this run" in capsys.readouterr().out
    assert main(["run", "-C", str(tiny_workspace), "--provider", "random", "--plain", "--max-experiments", "0"]) == 1
    assert capsys.readouterr().err.strip() == "autoresearch: --max-experiments must be >= 1, not 0"
