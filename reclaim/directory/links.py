"""Stable integer ids for accounts a directory names otherwise.

Workflow histories and the features' tables name accounts by integer ids. The built-in
directory uses its row ids; an LDAP directory names an entry by its `entryUUID` (OpenLDAP) or
`objectGUID` (Active Directory), a host application by its own user id. `DirectoryLink` maps
each such key to an integer once, the first time the account is found, and for good: a
renamed or moved entry keeps its UUID, so it keeps its id.

Only the directories that need it (`reclaim.directory.ldap`, `reclaim.directory.http`) and
the schema migrations import this module.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from reclaim.store.engine import in_session
from reclaim.store.models import utcnow, when

# A key no directory hands out (`external_key` of `id_for_nobody`'s read).
NOBODY = "~nobody~"


class DirectoryLink(SQLModel, table=True):
    """One account of an outside directory: `directory` (`ldap`, `http`) and the key it names
    the account by; `id` is the account id Reclaim uses everywhere else."""

    __tablename__ = "directory_link"
    __table_args__ = (UniqueConstraint("directory", "external_key"),)

    id: int | None = Field(default=None, primary_key=True)
    directory: str = Field(max_length=16)
    external_key: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_column=when())


class Links:
    """The ids of one directory's accounts."""

    def __init__(self, engine: Engine, directory: str) -> None:
        self._engine = engine
        self._directory = directory

    @property
    def engine(self) -> Engine:
        """Reclaim's own database, where the links (and the codes Reclaim keeps for these
        accounts, `reclaim.directory.kept_codes`) live."""
        return self._engine

    async def id_for(self, key: str) -> int:
        """The account id of `key`, given it the first time (two processes finding the same
        new account at once get the same id)."""

        def work(session: Session) -> int:
            for _ in range(2):
                found = session.exec(
                    select(DirectoryLink.id).where(
                        DirectoryLink.directory == self._directory,
                        DirectoryLink.external_key == key,
                    )
                ).first()
                if found is not None:
                    return found
                link = DirectoryLink(directory=self._directory, external_key=key)
                session.add(link)
                try:
                    session.commit()
                except IntegrityError:  # made by another process meanwhile: read it
                    session.rollback()
                    continue
                assert link.id is not None
                return link.id
            raise RuntimeError("directory_link: the key is neither found nor added")

        return await in_session(self._engine, work)

    async def id_for_nobody(self) -> None:
        """The read `id_for` makes for a known account, for a key no entry has: a lookup
        that finds nobody costs the same statement as one that finds an account."""

        def work(session: Session) -> None:
            session.exec(
                select(DirectoryLink.id).where(
                    DirectoryLink.directory == self._directory,
                    DirectoryLink.external_key == NOBODY,
                )
            ).first()

        await in_session(self._engine, work)

    async def key_for(self, account_id: int) -> str | None:
        """The key the directory names account `account_id` by (None: not one of its ids)."""

        def work(session: Session) -> str | None:
            link = session.get(DirectoryLink, account_id)
            if link is None or link.directory != self._directory:
                return None
            return link.external_key

        return await in_session(self._engine, work)
