"""Loaders: the user's JSONL files, hub datasets (offline, from a local file), BBH and MMLU.

Every bad input must fail with an error naming its file, row and field, so each case below
checks all three, not only the exception type.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from labelbudget.data.bbh import load_bbh
from labelbudget.data.hub import load_hub_dataset
from labelbudget.data.jsonl import load_jsonl_dataset
from labelbudget.data.mmlu import SUBJECT_CATEGORIES, load_mmlu
from labelbudget.data.records import FieldMap, example_from_record, field_map, flan_fields
from labelbudget.data.schema import Example
from labelbudget.errors import ConfigError, DataError, MissingResourceError

DOLLY_ROWS = [
    {"instruction": "Name a prime number.", "context": "", "response": "2", "category": "open_qa"},
    {
        "instruction": "Summarise.",
        "context": "Cats sleep a lot.",
        "response": "Cats nap.",
        "category": "summarization",
    },
]
FLAN_ROWS = [
    {
        "inputs": "Translate to French: hi",
        "targets": "salut",
        "task_name": "translation",
        "template_type": "zs_opt",
    },
    {
        "inputs": "Is 7 prime? yes or no",
        "targets": "yes",
        "task_name": "math_qa",
        "template_type": "fs_opt",
    },
]


def content_id(task: str, prompt: str, context: str | None) -> str:
    """The documented content id, computed here: SHA-256 of the JSON list [task, prompt, context]."""
    return hashlib.sha256(
        json.dumps([task, prompt, context], ensure_ascii=False).encode()
    ).hexdigest()[:16]


DOLLY_IDS = [
    content_id("open_qa", "Name a prime number.", None),
    content_id("summarization", "Summarise.", "Cats sleep a lot."),
]


def write_lines(path: Path, lines: list[object]) -> Path:
    """One line per item: dicts and lists as JSON, strings verbatim (to write broken lines)."""
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    return path


# --- field mapping and local JSONL files ----------------------------------------------------------


def test_dolly_jsonl_maps_instruction_context_response_and_category(tmp_path):
    data = load_jsonl_dataset(write_lines(tmp_path / "dolly.jsonl", DOLLY_ROWS), preset="dolly")

    assert data.name == "dolly" and data.test is None
    assert list(data.pool) == [
        Example(
            id=DOLLY_IDS[0],
            task="open_qa",
            prompt="Name a prime number.",
            context=None,
            response="2",
        ),
        Example(
            id=DOLLY_IDS[1],
            task="summarization",
            prompt="Summarise.",
            context="Cats sleep a lot.",
            response="Cats nap.",
        ),
    ]


def test_flan_jsonl_maps_inputs_targets_task_name_and_metadata(tmp_path):
    path = write_lines(tmp_path / "flan.jsonl", FLAN_ROWS)
    fields = OmegaConf.create(
        {"task": "task_name", "metadata": ["template_type"]}
    )  # as Hydra passes it

    data = load_jsonl_dataset(path, fields, name="flan-mix", preset="flan")

    assert data.name == "flan-mix"
    assert data.pool.task_sizes() == {"math_qa": 1, "translation": 1}
    first = data.pool[0]
    assert (first.prompt, first.response, first.context) == (
        "Translate to French: hi",
        "salut",
        None,
    )
    assert first.metadata == {"template_type": "zs_opt"}


def test_tulu_style_task_field_is_configurable(tmp_path):
    rows = [
        {"inputs": r["inputs"], "targets": r["targets"], "dataset": r["task_name"]}
        for r in FLAN_ROWS
    ]
    data = load_jsonl_dataset(
        write_lines(tmp_path / "tulu.jsonl", rows), {"task": "dataset"}, preset="flan"
    )
    assert data.pool.tasks == ["translation", "math_qa"]
    assert field_map({"task": "dataset"}, "flan") == flan_fields("dataset")


def test_generic_mapping_with_id_field_task_constant_and_test_file(tmp_path):
    fields = {"id": "uid", "prompt": "question", "response": "answer", "task_constant": "trivia"}
    pool = write_lines(
        tmp_path / "pool.jsonl", [{"uid": 7, "question": "Capital of France?", "answer": "Paris"}]
    )
    test = write_lines(
        tmp_path / "test.jsonl", [{"uid": "t1", "question": "Capital of Peru?", "answer": "Lima"}]
    )

    data = load_jsonl_dataset(pool, fields, test_path=test)

    assert data.name == "pool"
    assert data.pool[0] == Example(
        id="7", task="trivia", prompt="Capital of France?", response="Paris"
    )
    assert data.test is not None and data.test.ids == ["t1"]


def test_a_test_file_that_repeats_pool_prompts_is_warned_about(tmp_path, caplog):
    pool = write_lines(
        tmp_path / "pool.jsonl",
        [{"task": "t", "prompt": "Capital of France?"}, {"task": "t", "prompt": "2+2?"}],
    )
    test = write_lines(
        tmp_path / "test.jsonl",
        [{"id": "x", "task": "u", "prompt": "Capital of France?"}, {"task": "t", "prompt": "3+3?"}],
    )
    with caplog.at_level("WARNING"):
        load_jsonl_dataset(pool, test_path=test)
    assert (
        f"1 of 2 test prompts of {test} repeat a pool prompt of {pool} (same prompt and context): 'x';"
        in caplog.text
    )
    caplog.clear()
    load_jsonl_dataset(
        test, test_path=write_lines(tmp_path / "other.jsonl", [{"task": "t", "prompt": "4+4?"}])
    )
    assert "repeat a pool prompt" not in caplog.text


def test_json_list_file_loads_like_jsonl(tmp_path):
    path = tmp_path / "dolly.json"
    path.write_text(json.dumps(DOLLY_ROWS, indent=2))
    assert load_jsonl_dataset(path, preset="dolly").pool.ids == DOLLY_IDS


def test_blank_lines_are_skipped(tmp_path):
    path = write_lines(tmp_path / "dolly.jsonl", [DOLLY_ROWS[0], "", "   ", DOLLY_ROWS[1]])
    assert load_jsonl_dataset(path, preset="dolly").pool.ids == DOLLY_IDS


def test_ids_follow_content_not_position_or_file_name(tmp_path):
    rows = [{"prompt": f"q{i}", "task": "t", "response": "a"} for i in range(4)]
    before = load_jsonl_dataset(write_lines(tmp_path / "pool.jsonl", rows))
    # reordered, one row deleted and one appended, under another name
    after = load_jsonl_dataset(
        write_lines(
            tmp_path / "renamed.jsonl", [rows[3], rows[1], rows[0], {**rows[2], "prompt": "new"}]
        )
    )
    id_of = {e.prompt: e.id for e in before.pool}
    assert all(id_of[e.prompt] == e.id for e in after.pool if e.prompt in id_of)
    assert before.pool.ids == [content_id("t", f"q{i}", None) for i in range(4)]
    assert content_id("t", "new", None) in after.pool.ids


def test_a_row_id_field_is_used_by_default_and_a_named_one_is_required(tmp_path):
    path = write_lines(
        tmp_path / "pool.jsonl",
        [{"id": 7, "prompt": "a", "task": "t"}, {"id": "x", "prompt": "b", "task": "t"}],
    )
    assert load_jsonl_dataset(path).pool.ids == ["7", "x"]
    with pytest.raises(DataError, match="row 1, field 'uid': no field 'uid'"):
        load_jsonl_dataset(path, {"id": "uid"})


def test_duplicate_content_is_refused_naming_both_rows(tmp_path):
    path = write_lines(
        tmp_path / "pool.jsonl",
        [{"prompt": "a", "task": "t"}, {"prompt": "b", "task": "t"}, {"prompt": "a", "task": "t "}],
    )
    with pytest.raises(
        DataError,
        match=r"row 3, field 'id': repeats the task, prompt and context of row 1, so both get the "
        r"content id '[0-9a-f]{16}'; remove the repeat, or give every row an id",
    ):
        load_jsonl_dataset(path)


def test_task_names_are_trimmed(tmp_path):
    path = write_lines(
        tmp_path / "pool.jsonl",
        [{"prompt": "a", "task": "open_qa "}, {"prompt": "b", "task": " open_qa"}],
    )
    assert load_jsonl_dataset(path).pool.task_sizes() == {"open_qa": 2}


def test_missing_task_field_says_which_field_and_what_the_row_has(tmp_path):
    row = {k: v for k, v in FLAN_ROWS[1].items() if k != "task_name"}
    path = write_lines(tmp_path / "flan.jsonl", [FLAN_ROWS[0], row])

    with pytest.raises(DataError) as caught:
        load_jsonl_dataset(path, preset="flan")

    assert (caught.value.source, caught.value.row, caught.value.field) == (
        str(path),
        2,
        "task_name",
    )
    assert (
        "no field 'task_name' (row has: inputs, targets, template_type); "
        "set dataset.fields.task to the field that holds the task name"
    ) in str(caught.value)


BAD_DOLLY_FILES = {
    "empty prompt": (
        [DOLLY_ROWS[0], {**DOLLY_ROWS[1], "instruction": "  "}],
        2,
        "instruction",
        "is empty",
    ),
    "non-string prompt": (
        [{**DOLLY_ROWS[0], "instruction": 42}],
        1,
        "instruction",
        "must be a string, got int",
    ),
    "non-string context": (
        [{**DOLLY_ROWS[0], "context": ["a"]}],
        1,
        "context",
        "must be a string, got list",
    ),
    "malformed JSON at line 3": (
        [*DOLLY_ROWS, '{"instruction": "x",'],
        3,
        None,
        "line is not valid JSON",
    ),
    "line not an object": (
        [DOLLY_ROWS[0], [1, 2]],
        2,
        None,
        "expected an object with named fields, got list",
    ),
}


@pytest.mark.parametrize(
    "lines, row, field, message", BAD_DOLLY_FILES.values(), ids=BAD_DOLLY_FILES.keys()
)
def test_bad_rows_name_file_row_and_field(tmp_path, lines, row, field, message):
    path = write_lines(tmp_path / "dolly.jsonl", lines)

    with pytest.raises(DataError) as caught:
        load_jsonl_dataset(path, preset="dolly")

    assert (caught.value.source, caught.value.row, caught.value.field) == (str(path), row, field)
    assert str(caught.value).startswith(f"{path}, row {row}") and message in str(caught.value)


def test_duplicate_ids_are_rejected_by_the_pool(tmp_path):
    path = write_lines(tmp_path / "qa.jsonl", [{"id": "a", "task": "t", "prompt": "p"}] * 2)

    with pytest.raises(DataError) as caught:
        load_jsonl_dataset(path, {"id": "id", "response": None})

    assert str(caught.value) == f"{path}, row 2, field 'id': duplicate id 'a' (first seen in row 1)"


@pytest.mark.parametrize("bad_id", [1.5, True, None])
def test_ids_must_be_strings_or_integers(bad_id):
    record = {"id": bad_id, "task": "t", "prompt": "p"}
    with pytest.raises(DataError, match="field 'id': must be a string"):
        example_from_record(record, FieldMap(id="id"), "src", 1)


def test_missing_file_names_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingResourceError, match=str(tmp_path / "nope.jsonl")):
        load_jsonl_dataset("nope.jsonl", preset="dolly")


def test_an_unreadable_pool_file_is_named(tmp_path, monkeypatch):
    path = tmp_path / "pool.jsonl"
    path.write_text(json.dumps(DOLLY_ROWS[0]) + "\n")
    real_read_text = Path.read_text

    def denied(self, *args, **kwargs):  # what chmod 000 gives a user who is not root
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(DataError, match=f"^{path}: cannot be read \\(Permission denied\\)$"):
        load_jsonl_dataset(path, preset="dolly")


def test_json_file_that_is_not_a_list_names_the_file(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"rows": DOLLY_ROWS}))
    with pytest.raises(DataError, match="must hold a list of objects") as caught:
        load_jsonl_dataset(path, preset="dolly")
    assert caught.value.source == str(path)


@pytest.mark.parametrize(
    "fields, preset, message",
    [
        ({"prompt_field": "x"}, None, "unknown dataset.fields key"),
        ({}, "alpaca", "unknown dataset.preset 'alpaca'"),
        ({"task": None}, None, "needs 'task'"),
    ],
)
def test_impossible_field_configs_are_config_errors(fields, preset, message):
    with pytest.raises(ConfigError, match=message):
        field_map(fields, preset)


# --- hub loader, offline against a local file ------------------------------------------------------


def test_hub_loader_maps_rows_like_local_files(tmp_path, offline_hub):
    path = write_lines(tmp_path / "dolly.jsonl", DOLLY_ROWS)

    data = load_hub_dataset(
        "json", data_files=str(path), preset="dolly", cache_dir=str(offline_hub)
    )

    local = load_jsonl_dataset(path, preset="dolly")
    assert data.name == "json" and data.pool.ids == local.pool.ids == DOLLY_IDS
    assert [(e.task, e.prompt, e.context, e.response) for e in data.pool] == [
        (e.task, e.prompt, e.context, e.response) for e in local.pool
    ]


def test_hub_rows_get_the_same_field_errors(tmp_path, offline_hub):
    path = write_lines(
        tmp_path / "dolly.jsonl", [DOLLY_ROWS[0], {**DOLLY_ROWS[1], "instruction": ""}]
    )

    with pytest.raises(DataError) as caught:
        load_hub_dataset(
            "json",
            data_files=str(path),
            fields={"prompt": "instruction", "task": "category"},
            cache_dir=str(offline_hub),
        )

    assert (caught.value.source, caught.value.row, caught.value.field) == (
        "json (split 'train')",
        2,
        "instruction",
    )


def test_unreachable_hub_dataset_suggests_the_local_file_config(offline_hub):
    with pytest.raises(MissingResourceError) as caught:
        load_hub_dataset(
            "databricks/databricks-dolly-15k", preset="dolly", cache_dir=str(offline_hub)
        )
    message = str(caught.value)
    assert (
        "'databricks/databricks-dolly-15k'" in message
        and "dataset=dolly_jsonl dataset.path=" in message
    )


def test_unknown_hub_split_is_a_config_error(tmp_path, offline_hub):
    path = write_lines(tmp_path / "dolly.jsonl", DOLLY_ROWS)
    with pytest.raises(ConfigError, match="validation"):
        load_hub_dataset(
            "json",
            split="validation",
            data_files=str(path),
            preset="dolly",
            cache_dir=str(offline_hub),
        )


# --- BBH ---------------------------------------------------------------------------------------------


def test_real_bbh_has_27_tasks_and_6511_examples_split_disjointly(shared_data, caplog):
    with caplog.at_level("WARNING"):
        data = load_bbh(shared_data / "bbh" / "bbh")
    # BBH repeats 2 inputs of causal_judgement (and 2 of sports_understanding) within the task;
    # this split puts one copy of each causal_judgement pair on either side
    assert "2 of 3255 test prompts" in caplog.text and "causal_judgement-" in caplog.text

    assert data.test is not None
    assert len(data.pool) + len(data.test) == 6511
    assert set(data.pool.tasks) == set(data.test.tasks) and len(set(data.pool.tasks)) == 27
    assert not set(data.pool.ids) & set(data.test.ids)
    assert Counter(data.test.tasks)["causal_judgement"] == 187 // 2
    navigate = json.loads((shared_data / "bbh" / "bbh" / "navigate.json").read_text())["examples"]
    example = next(e for e in [*data.pool, *data.test] if e.id == "navigate-0")
    assert (example.task, example.prompt, example.response) == (
        "navigate",
        navigate[0]["input"],
        navigate[0]["target"],
    )


def test_bbh_split_depends_only_on_seed_and_task(shared_data):
    folder = shared_data / "bbh" / "bbh"
    everything = load_bbh(folder, seed=3)
    navigate_only = load_bbh(folder, tasks="navigate", seed=3)

    assert navigate_only.pool.ids == [i for i in everything.pool.ids if i.startswith("navigate-")]
    assert load_bbh(folder, tasks=["navigate"], seed=4).pool.ids != navigate_only.pool.ids


def test_unknown_bbh_task_lists_the_valid_ones(shared_data):
    with pytest.raises(ConfigError, match="unknown BBH task.*'navigat'.*word_sorting"):
        load_bbh(shared_data / "bbh" / "bbh", tasks=["navigat"])


def test_bbh_file_with_wrong_structure_names_file_example_and_field(tmp_path):
    (tmp_path / "toy.json").write_text(
        json.dumps({"examples": [{"input": "a", "target": "b"}, {"input": "c"}]})
    )
    with pytest.raises(DataError) as caught:
        load_bbh(tmp_path)
    assert (caught.value.source, caught.value.row, caught.value.field) == (
        str(tmp_path / "toy.json"),
        2,
        "target",
    )
    assert "dataset.fields" not in str(caught.value)  # BBH's format is fixed: no mapping to change

    (tmp_path / "toy.json").write_text(json.dumps([{"input": "a", "target": "b"}]))
    with pytest.raises(DataError, match='"examples" list') as caught:
        load_bbh(tmp_path)
    assert caught.value.source == str(tmp_path / "toy.json")


# --- MMLU --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split, rows", [("dev", 285), ("val", 1542), ("test", 14079)])
def test_real_mmlu_split_sizes_and_57_subjects(shared_data, split, rows):
    data = load_mmlu(shared_data / "mmlu", pool_split=split, test_split=None)
    assert len(data.pool) == rows
    assert set(data.pool.tasks) == set(SUBJECT_CATEGORIES) and len(SUBJECT_CATEGORIES) == 57


def test_real_mmlu_rows_match_the_csv_read_independently(shared_data):
    path = shared_data / "mmlu" / "val" / "abstract_algebra_val.csv"
    with path.open(newline="", encoding="utf-8") as file:
        first_rows = [row for row, _ in zip(csv.reader(file), range(3))]
    # hand-checked against the file: the first question; the third has commas inside quoted options
    assert first_rows[0] == [
        "The cyclic subgroup of Z_24 generated by 18 has order",
        "4",
        "8",
        "12",
        "6",
        "A",
    ]
    assert first_rows[2][1:] == ["True, True", "False, False", "True, False", "False, True", "A"]

    data = load_mmlu(shared_data / "mmlu", subjects="abstract_algebra")

    for index, (question, a, b, c, d, answer) in enumerate(first_rows):
        example = data.pool[index]
        assert example.id == f"abstract_algebra-val-{index}" and example.task == "abstract_algebra"
        assert example.prompt == f"{question}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:"
        assert example.response == answer
        assert example.metadata == {
            "choices": [a, b, c, d],
            "subject": "abstract_algebra",
            "category": "STEM",
        }
    assert data.test is not None and set(data.test.tasks) == {"abstract_algebra"}


def test_mmlu_categories_follow_the_standard_grouping():
    assert Counter(SUBJECT_CATEGORIES.values()) == {
        "STEM": 18,
        "humanities": 13,
        "social sciences": 12,
        "other": 14,
    }


def write_mmlu_file(folder: Path, rows: list[list[str]]) -> Path:
    path = folder / "val" / "anatomy_val.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(rows)
    return path


GOOD_MMLU_ROW = [
    "Which bone is the longest?\nPick one.",
    "Femur",
    "Tibia, or fibula",
    "Ulna",
    "Radius",
    "A",
]
BAD_MMLU_ROWS = {
    "too few columns": (GOOD_MMLU_ROW[:5], "answer", "has 5 columns, expected 6"),
    "too many columns": ([*GOOD_MMLU_ROW, "extra"], None, "has 7 columns, expected 6"),
    "answer not a letter A-D": (
        [*GOOD_MMLU_ROW[:5], "E"],
        "answer",
        "must be one of A, B, C, D, got 'E'",
    ),
}


@pytest.mark.parametrize(
    "bad_row, field, message", BAD_MMLU_ROWS.values(), ids=BAD_MMLU_ROWS.keys()
)
def test_bad_mmlu_rows_name_file_row_and_field(tmp_path, bad_row, field, message):
    path = write_mmlu_file(tmp_path, [GOOD_MMLU_ROW, bad_row])  # the good row spans two lines

    with pytest.raises(DataError, match=message) as caught:
        load_mmlu(tmp_path, test_split=None)

    assert (caught.value.source, caught.value.row, caught.value.field) == (str(path), 2, field)


def test_mmlu_config_mistakes(tmp_path):
    write_mmlu_file(tmp_path, [GOOD_MMLU_ROW])
    with pytest.raises(
        ConfigError, match="unknown MMLU subject.*'anatomyy'.*valid subjects are: anatomy"
    ):
        load_mmlu(tmp_path, subjects=["anatomyy"], test_split=None)
    with pytest.raises(ConfigError, match="must differ"):
        load_mmlu(tmp_path, pool_split="val", test_split="val")
    with pytest.raises(MissingResourceError, match=str(tmp_path / "test")):
        load_mmlu(tmp_path)


def test_a_lone_surrogate_is_refused_naming_its_row_and_field(tmp_path):
    good = json.dumps({"id": "a", "task": "t", "prompt": "fine", "response": "r"})
    # "\ud800" as JSON writes it: valid JSON, but no character (it cannot be UTF-8)
    bad = '{"id": "b", "task": "t", "prompt": "cut \\ud800 here", "response": "r"}'
    path = write_lines(tmp_path / "pool.jsonl", [good, bad])
    with pytest.raises(
        DataError,
        match=r"pool.jsonl, row 2, field 'prompt': holds a lone "
        r"surrogate '\\ud800' at character 4",
    ):
        load_jsonl_dataset(path)
    # in a field name of the metadata, and in a .json list: the same, by position
    nested = {"id": "c", "task": "t", "prompt": "p", "response": "r", "meta": {"\ud800": 1}}
    listed = tmp_path / "pool.json"
    listed.write_text(json.dumps([json.loads(good), nested]))  # json.dumps escapes it as \ud800
    with pytest.raises(DataError, match=r"pool.json, row 2, field 'meta': holds a lone surrogate"):
        load_jsonl_dataset(listed)


def nest(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_deep_nesting_is_refused_naming_its_row(tmp_path):
    row = '{{"id": "a", "task": "t", "prompt": "p", "response": "r", "meta": {}}}'
    # the row's object is level 1: 63 arrays inside it make 64 levels, the most allowed
    fine = write_lines(tmp_path / "fine.jsonl", [row.format(nest(63))])
    pool = load_jsonl_dataset(fine, fields={"metadata": ["meta"]}).pool
    assert len(pool) == 1
    deep = write_lines(tmp_path / "deep.jsonl", [row.format(nest(63)), row.format(nest(64))])
    with pytest.raises(
        DataError,
        match=r"deep.jsonl, row 2, field 'meta': nests arrays or "
        r"objects more than 64 levels deep",
    ):
        load_jsonl_dataset(deep)
    # beyond Python's own recursion limit: json.loads itself gives up; still the row is named
    huge = write_lines(tmp_path / "huge.jsonl", [row.format(nest(63)), row.format(nest(100_000))])
    with pytest.raises(DataError, match=r"huge.jsonl, row 2: nests arrays or objects more than 64"):
        load_jsonl_dataset(huge)
