"""The YAML users `kubectl apply -f`: a file, or every .yaml/.yml/.json file of a folder, each holding
one or more documents (or a List). Marina's resources are kept; anything else is named and set aside."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from marina.contract import API_VERSION, KINDS
from marina.system.text import one_line

SUFFIXES = (".yaml", ".yml", ".json")


class DocumentError(ValueError):
    """A file that cannot be read as Kubernetes objects; the message names the file."""


@dataclass(frozen=True)
class Documents:
    resources: list[dict[str, Any]]
    skipped: list[str]  # `Kind name (file)` of each object that is not one of Marina's


def files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
    if not path.exists():
        raise DocumentError(f"{path}: no such file or folder")
    return [path]


def _objects(path: Path) -> Iterator[Any]:
    text = path.read_text()
    try:
        loaded = [json.loads(text)] if path.suffix == ".json" else list(yaml.safe_load_all(text))
    except (ValueError, yaml.YAMLError) as error:
        language = "JSON" if path.suffix == ".json" else "YAML"
        raise DocumentError(f"{path}: not valid {language}: {one_line(str(error))}") from error
    for document in loaded:
        if isinstance(document, Mapping) and document.get("kind") == "List":
            yield from document.get("items") or []
        elif document is not None:
            yield document


def read(paths: list[Path], namespace: str) -> Documents:
    marina = {kind.kind for kind in KINDS}
    resources: list[dict[str, Any]] = []
    skipped: list[str] = []
    for path in (f for p in paths for f in files(p)):
        for document in _objects(path):
            if not isinstance(document, Mapping) or not document.get("kind"):
                raise DocumentError(f"{path}: an object needs apiVersion, kind and metadata")
            metadata = document.get("metadata") or {}
            name = metadata.get("name") if isinstance(metadata, Mapping) else None
            if document.get("apiVersion") != API_VERSION or document.get("kind") not in marina:
                skipped.append(f"{document['kind']} {name or ''} ({path.name})".replace("  ", " "))
                continue
            if not name:
                raise DocumentError(f"{path}: a {document['kind']} has no metadata.name")
            body = dict(document)
            body["metadata"] = {
                **document["metadata"],
                "namespace": document["metadata"].get("namespace") or namespace,
            }
            resources.append(body)
    return Documents(resources, skipped)
