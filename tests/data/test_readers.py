from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autoresearch.data.readers import iter_documents, iter_documents_many


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_txt_is_split_on_the_endoftext_line(tmp_path: Path) -> None:
    path = write(tmp_path / "s.txt", "First story.\nStill first.\n<|endoftext|>\n\nSecond story.\n<|endoftext|>\n")
    assert list(iter_documents(path)) == ["First story.\nStill first.", "Second story."]


def test_txt_separator_inside_a_line_also_splits(tmp_path: Path) -> None:
    path = write(tmp_path / "s.txt", "one<|endoftext|>two<|endoftext|><|endoftext|>three")
    assert list(iter_documents(path)) == ["one", "two", "three"]


def test_txt_without_separator_is_one_document(tmp_path: Path) -> None:
    text = "  To be, or not to be,\nthat is the question.\n\nWhether 'tis nobler\n"
    path = write(tmp_path / "play.txt", text)
    assert list(iter_documents(path)) == [text.rstrip("\n")]


def test_empty_txt_has_no_documents(tmp_path: Path) -> None:
    assert list(iter_documents(write(tmp_path / "empty.txt", "\n\n"))) == []


def test_non_utf8_txt_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.txt: not UTF-8") as caught:
        list(iter_documents(path))
    assert "\n" not in str(caught.value)


def test_jsonl_reads_the_text_field(tmp_path: Path) -> None:
    lines = [json.dumps({"text": "alpha", "id": 1}), "", json.dumps({"text": "beta\nwith newline"})]
    path = write(tmp_path / "d.jsonl", "\n".join(lines) + "\n")
    assert list(iter_documents(path)) == ["alpha", "beta\nwith newline"]


def test_bad_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": "ok"}\n{"text": "ok too"}\n{"text": broken\n')
    documents = iter_documents(path)
    assert next(documents) == "ok"
    with pytest.raises(ValueError) as caught:
        list(documents)
    message = str(caught.value)
    assert message.startswith(f"{path}:3: not valid JSON")
    assert "\n" not in message


def test_jsonl_line_without_text_field_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"content": "wrong key"}\n')
    with pytest.raises(ValueError, match=r'd\.jsonl:1: no "text" field'):
        list(iter_documents(path))


def test_jsonl_text_must_be_a_string(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": 42}\n')
    with pytest.raises(ValueError, match=r'd\.jsonl:1: "text" is a int'):
        list(iter_documents(path))


def write_parquet(path: Path, texts: list[str | None], row_group_size: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": list(range(len(texts))), "text": texts}), path, row_group_size=row_group_size)
    return path


def test_parquet_text_column_across_row_groups(tmp_path: Path) -> None:
    texts = [f"doc {i}" for i in range(7)]
    path = write_parquet(tmp_path / "shard.parquet", texts, row_group_size=2)
    assert pq.ParquetFile(path).num_row_groups == 4
    assert list(iter_documents(path)) == texts


def test_parquet_skips_null_and_empty_texts(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "shard.parquet", ["a", None, "", "b"])
    assert list(iter_documents(path)) == ["a", "b"]


def test_parquet_is_read_lazily_one_row_group_at_a_time(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "shard.parquet", ["first", "second", "third"], row_group_size=1)
    documents = iter_documents(path)
    assert next(documents) == "first"  # nothing else was needed to get here
    assert list(documents) == ["second", "third"]


def test_parquet_without_text_column(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"body": ["x"]}), path)
    with pytest.raises(ValueError, match=r'other\.parquet: no "text" column \(columns: body\)'):
        list(iter_documents(path))


def test_truncated_parquet_is_a_one_line_error(tmp_path: Path) -> None:
    good = write_parquet(tmp_path / "good.parquet", ["a", "b"])
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(good.read_bytes()[:20])
    with pytest.raises(ValueError, match="broken.parquet: not a readable parquet file") as caught:
        list(iter_documents(broken))
    assert "\n" not in str(caught.value)


def test_directory_is_read_recursively_in_name_order(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write(root / "b.txt", "from b")
    write(root / "a" / "z.jsonl", json.dumps({"text": "from a/z"}) + "\n")
    write_parquet(root / "c" / "shard.parquet", ["from c/shard"])
    write(root / "notes.md", "ignored: not a data file")
    write(root / "b.parquet.part", "ignored: an unfinished download")
    write(root / ".hidden" / "x.txt", "ignored: hidden")
    assert list(iter_documents(root)) == ["from a/z", "from b", "from c/shard"]


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "readme.md", "nothing to train on")
    with pytest.raises(ValueError, match="no .txt/.jsonl/.parquet files in folder"):
        iter_documents(tmp_path)


def test_unknown_extension_is_a_one_line_error(tmp_path: Path) -> None:
    path = write(tmp_path / "data.csv", "text\nhello\n")
    expected = r"cannot read .*data\.csv: unknown file type '\.csv'; use \.txt/\.jsonl/\.parquet"
    with pytest.raises(ValueError, match=expected):
        iter_documents(path)


def test_missing_path_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        iter_documents(tmp_path / "nope.txt")


def test_iter_documents_many_chains_in_order_and_checks_paths_first(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", "A1<|endoftext|>A2")
    b = write_parquet(tmp_path / "b.parquet", ["B1"])
    assert list(iter_documents_many([a, b, a])) == ["A1", "A2", "B1", "A1", "A2"]
    with pytest.raises(ValueError, match="unknown file type"):
        iter_documents_many([a, write(tmp_path / "c.csv", "x")])


def test_string_paths_are_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", "hello")
    assert list(iter_documents(str(path))) == ["hello"]
