"""Documents from local files: .txt, .jsonl, .parquet, or a folder of them.

Everything streams: a multi-GB TinyStories .txt is read line by line and a
parquet shard one row group at a time, so memory stays small. Errors about the
user's files are one-line ValueErrors that name the file (and line).

Path checks happen when `iter_documents` is called; the files themselves are
read lazily as the returned iterator is consumed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from pathlib import Path

__all__ = ["DOCUMENT_SEPARATOR", "SUPPORTED_SUFFIXES", "iter_documents", "iter_documents_many"]

# TinyStories (and GPT-2 era corpora) put this on its own line between documents.
DOCUMENT_SEPARATOR = "<|endoftext|>"

Reader = Callable[[Path], Iterator[str]]


def iter_documents(path: Path | str) -> Iterator[str]:
    """Yield the documents in a .txt, .jsonl or .parquet file, or in a folder of them.

    Empty documents are skipped. A folder is searched recursively and its
    files are read in order of their relative path.
    """
    path = Path(path)
    if path.is_dir():
        return _iter_directory(path, _files_in(path))
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    return _reader_for(path)(path)


def iter_documents_many(paths: Iterable[Path | str]) -> Iterator[str]:
    """The documents of several paths, one after the other."""
    # Build every iterator first so a bad path fails before any reading starts.
    return chain.from_iterable([iter_documents(path) for path in paths])


def _reader_for(path: Path) -> Reader:
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"cannot read {path}: unknown file type {path.suffix or '(none)'!r}; use {_SUFFIX_LIST}")
    return reader


def _files_in(directory: Path) -> list[Path]:
    candidates = (p for p in directory.rglob("*") if p.suffix.lower() in _READERS and p.is_file())
    files = sorted(
        (p for p in candidates if not _is_hidden(p, directory)),
        key=lambda p: p.relative_to(directory).as_posix(),
    )
    if not files:
        raise ValueError(f"no {_SUFFIX_LIST} files in folder {directory}")
    return files


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _iter_directory(directory: Path, files: list[Path]) -> Iterator[str]:
    for file in files:
        yield from _reader_for(file)(file)


def _iter_txt(path: Path) -> Iterator[str]:
    """Split on the separator if the file has one; otherwise the whole file is one document."""
    pending: list[str] = []
    line_number = 0
    try:
        with open(path, encoding="utf-8") as lines:
            for line_number, line in enumerate(lines, start=1):
                if DOCUMENT_SEPARATOR not in line:
                    pending.append(line)
                    continue
                # Usually the separator is a line of its own, but text around it is kept too.
                pieces = line.split(DOCUMENT_SEPARATOR)
                pending.append(pieces[0])
                yield from _nonempty(_joined(pending))
                for middle in pieces[1:-1]:
                    yield from _nonempty(middle)
                pending = [pieces[-1]]
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 text (near line {line_number + 1}: {exc.reason}); convert the file to UTF-8"
        ) from None
    yield from _nonempty(_joined(pending))


def _joined(lines: list[str]) -> str:
    return "".join(lines)


def _nonempty(document: str) -> Iterator[str]:
    # Newlines next to a separator belong to the file layout, not to the document.
    document = document.strip("\r\n")
    if document.strip():
        yield document


def _iter_jsonl(path: Path) -> Iterator[str]:
    """One JSON object per line with a string field "text"; blank lines are skipped."""
    try:
        with open(path, encoding="utf-8") as lines:
            for line_number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                text = _text_of_json_line(path, line_number, line)
                if text.strip():
                    yield text
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason}); convert the file to UTF-8") from None


_JSONL_SHAPE = 'each line must be a JSON object like {"text": "..."}'


def _text_of_json_line(path: Path, line_number: int, line: str) -> str:
    where = f"{path}:{line_number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); {_JSONL_SHAPE}") from None
    if not isinstance(record, dict) or "text" not in record:
        raise ValueError(f"{where}: no \"text\" field; {_JSONL_SHAPE}")
    text = record["text"]
    if not isinstance(text, str):
        raise ValueError(f"{where}: \"text\" is a {type(text).__name__}, not a string")
    return text


def _iter_parquet(path: Path) -> Iterator[str]:
    """The "text" column, one row group at a time so a 1 GB shard never sits in memory whole."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        why = _one_line(str(exc))
        raise ValueError(f"{path}: not a readable parquet file ({why}); delete it and fetch it again") from None
    with parquet:
        if "text" not in parquet.schema_arrow.names:
            columns = ", ".join(parquet.schema_arrow.names) or "none"
            raise ValueError(f"{path}: no \"text\" column (columns: {columns})")
        for group in range(parquet.num_row_groups):
            try:
                texts = parquet.read_row_group(group, columns=["text"]).column("text").to_pylist()
            except (pa.ArrowException, OSError) as exc:
                why = _one_line(str(exc))
                raise ValueError(f"{path}: row group {group} is unreadable ({why}); delete it and fetch it again") from None
            for text in texts:
                if isinstance(text, str) and text.strip():
                    yield text


def _one_line(text: str) -> str:
    return " ".join(text.split())


_READERS: dict[str, Reader] = {".txt": _iter_txt, ".jsonl": _iter_jsonl, ".parquet": _iter_parquet}
_SUFFIX_LIST = "/".join(_READERS)
SUPPORTED_SUFFIXES = tuple(_READERS)
