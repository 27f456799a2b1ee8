"""Gated assets as staff manage them: store an upload (size and type limits), list,
edit the title and description per language, archive.

The command line (``leadvault assets``), the admin API and the console call these
same functions. Plain functions taking a session; they flush, never commit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa
from sqlalchemy.orm import Session

from capture.models import Form
from leadvault import clock, i18n, sizes, untrusted
from leadvault.crypto import public_id
from leadvault.db import settings_of
from leadvault.i18n import N_
from leadvault.refusals import RefusedRequest
from widgets.models import Asset, FormAsset

# Whitepapers, checklists, slides: big enough for a designed PDF, small enough to mail a link to.
MAX_BYTES = 50 * 1024 * 1024
MAX_TITLE = 200
MAX_DESCRIPTION = 2000
MAX_LISTED = 500


@dataclasses.dataclass(frozen=True)
class FileKind:
    content_type: str
    magic: tuple[bytes, ...]  # the file must start with one of these


_ZIP = (b"PK\x03\x04",)
# The extension names the type; the first bytes must agree (a renamed .exe is refused).
KINDS: dict[str, FileKind] = {
    ".pdf": FileKind("application/pdf", (b"%PDF-",)),
    ".epub": FileKind("application/epub+zip", _ZIP),
    ".zip": FileKind("application/zip", _ZIP),
    ".docx": FileKind(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document", _ZIP
    ),
    ".xlsx": FileKind("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", _ZIP),
    ".pptx": FileKind(
        "application/vnd.openxmlformats-officedocument.presentationml.presentation", _ZIP
    ),
    ".png": FileKind("image/png", (b"\x89PNG\r\n\x1a\n",)),
    ".jpg": FileKind("image/jpeg", (b"\xff\xd8\xff",)),
    ".jpeg": FileKind("image/jpeg", (b"\xff\xd8\xff",)),
}


class AssetError(RefusedRequest):
    """An asset request refused; ``conflict`` (409) and ``too_large`` (413) say which
    answer it wants besides the usual 422."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        conflict: bool = False,
        too_large: bool = False,
        **values: object,
    ) -> None:
        super().__init__(message, field=field, **values)
        self.conflict, self.too_large = conflict, too_large


def too_large() -> AssetError:
    """The refusal of a file over :data:`MAX_BYTES` (answered 413), whether the stored
    copy or the request's size found it."""
    return AssetError(
        N_("The file is larger than %(size)s."),
        field="file",
        too_large=True,
        size=sizes.readable(MAX_BYTES),
    )


@dataclasses.dataclass(frozen=True)
class AssetTexts:
    """Title and description per language; the default language's title is required."""

    titles: Mapping[str, str]
    descriptions: Mapping[str, str] = dataclasses.field(default_factory=dict)


def _clean_texts(texts: AssetTexts) -> tuple[dict[str, str], dict[str, str]]:
    titles: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    for lang in i18n.LANGUAGES:
        title = " ".join((texts.titles.get(lang) or "").split())
        description = (texts.descriptions.get(lang) or "").strip()
        if len(title) > MAX_TITLE:
            raise AssetError(
                N_("The title may have at most %(count)s characters."),
                field=f"title_{lang}",
                count=MAX_TITLE,
            )
        if len(description) > MAX_DESCRIPTION:
            raise AssetError(
                N_("The description may have at most %(count)s characters."),
                field=f"description_{lang}",
                count=MAX_DESCRIPTION,
            )
        if untrusted.staff_text_refused(title + description):
            raise AssetError(
                N_("Titles and descriptions may not hold control characters."),
                field=f"title_{lang}",
            )
        if title:
            titles[lang] = title
        if description:
            descriptions[lang] = description
    if i18n.DEFAULT_LANGUAGE not in titles:
        raise AssetError(N_("An asset needs a title."), field=f"title_{i18n.DEFAULT_LANGUAGE}")
    return titles, descriptions


def file_kind(filename: str) -> FileKind:
    suffix = Path(filename).suffix.lower()
    kind = KINDS.get(suffix)
    if kind is None:
        allowed = ", ".join(sorted(KINDS))
        raise AssetError(
            N_("Files of type %(kind)s are not taken; use one of %(allowed)s."),
            field="file",
            kind=suffix or "(none)",
            allowed=allowed,
        )
    return kind


def _safe_filename(filename: str) -> str:
    """The name the download offers: no folders, no control characters, bounded."""
    name = Path(filename.replace("\\", "/")).name
    name = "".join(c for c in name if c.isprintable() and c not in '"/').strip(" .")
    if not name or not Path(name).suffix:
        raise AssetError(N_("The file needs a name with an extension."), field="file")
    stem, suffix = Path(name).stem, Path(name).suffix
    return stem[: 200 - len(suffix)] + suffix


def store(session: Session, stream: BinaryIO, *, filename: str, texts: AssetTexts) -> Asset:
    """Store an uploaded file as a gated asset: checked type, at most :data:`MAX_BYTES`."""
    name = _safe_filename(filename)
    kind = file_kind(name)
    titles, descriptions = _clean_texts(texts)
    folder = settings_of(session).assets_folder
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    # Written to a private (0600) temporary file beside the target, renamed once complete.
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            head = b""
            while chunk := stream.read(1 << 20):
                if len(head) < 16:
                    head += chunk[:16]
                size += len(chunk)
                if size > MAX_BYTES:
                    raise too_large()
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise AssetError(N_("The file is empty."), field="file")
        if not head.startswith(kind.magic):
            raise AssetError(
                N_("The file's content is not what %(kind)s promises."),
                field="file",
                kind=Path(name).suffix.lower(),
            )
        stored = f"{digest.hexdigest()}{Path(name).suffix.lower()}"
        # mkstemp made it 0600; replacing keeps a copy stored before private too.
        Path(temporary).replace(folder / stored)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    asset = Asset(
        public_id=public_id(),
        title=titles[i18n.DEFAULT_LANGUAGE],
        titles=titles,
        descriptions=descriptions,
        filename=name,
        content_type=kind.content_type,
        size=size,
        sha256=digest.hexdigest(),
        storage="instance",
        path=stored,
        download_count=0,
        created_at=clock.now(),
    )
    session.add(asset)
    session.flush()
    return asset


def store_file(session: Session, source: Path, *, texts: AssetTexts) -> Asset:
    """Store a file from disk (the command line)."""
    if not source.is_file():
        raise AssetError(N_("%(path)s is not a readable file."), field="file", path=str(source))
    with source.open("rb") as handle:
        return store(session, handle, filename=source.name, texts=texts)


def listing(session: Session, *, archived: bool = False, limit: int = MAX_LISTED) -> list[Asset]:
    """Assets newest first: the live ones, or with ``archived`` only the archived ones."""
    done = Asset.archived_at.is_not(None) if archived else Asset.archived_at.is_(None)
    query = sa.select(Asset).where(done).order_by(Asset.id.desc()).limit(min(limit, MAX_LISTED))
    return list(session.scalars(query))


def update_texts(session: Session, asset: Asset, texts: AssetTexts) -> Asset:
    titles, descriptions = _clean_texts(texts)
    asset.titles, asset.descriptions = titles, descriptions
    asset.title = titles[i18n.DEFAULT_LANGUAGE]
    session.flush()
    return asset


def forms_delivering(session: Session, asset_ids: list[int]) -> dict[int, list[Form]]:
    """The forms that deliver each asset (archived forms too), oldest first."""
    found: dict[int, list[Form]] = {asset_id: [] for asset_id in asset_ids}
    if not asset_ids:
        return found
    rows = session.execute(
        sa.select(FormAsset.asset_id, Form)
        .join(Form, Form.id == FormAsset.form_id)
        .where(FormAsset.asset_id.in_(asset_ids))
        .order_by(Form.id)
    )
    for asset_id, form in rows:
        found[asset_id].append(form)
    return found


def archive(session: Session, asset: Asset) -> Asset:
    """Archive an asset no active form delivers; links already mailed keep working."""
    if asset.archived_at is not None:
        return asset
    active = [f.public_id for f in forms_delivering(session, [asset.id])[asset.id] if f.active]
    if active:
        raise AssetError(
            N_(
                "Form %(forms)s still delivers this asset; give the form another asset "
                "or archive the form first."
            ),
            conflict=True,
            forms=", ".join(active),
        )
    asset.archived_at = clock.now()
    session.flush()
    return asset
