"""Crash simulation through the I/O seam: record every effect, then replay crash states.

:class:`CrashRecorder` is a :class:`~snapstore._log.seam.FileSystem` that performs every
call on the real OS *and* records its effect on a model of the directory tree it
was started on. :func:`crash_states` then replays chosen subsets of the recorded
effects on that starting tree, under the persistence model below, and
:meth:`CrashState.materialize` writes each resulting tree into a fresh directory
for the code under test to reopen with the real file system. The approach
follows SQLite's crash VFS (tear and drop unsynced writes), the ALICE study
(OSDI '14: which reorderings real file systems allow) and LazyFS (page-cache
loss at a chosen point).

Persistence model
-----------------
A *crash point* ``i`` means effects ``0 .. i-1`` were issued and nothing after.

* A data effect (write, truncate) on a file is *durable* once a later ``sync``
  of the same file was issued; a directory effect (create, rename, link,
  unlink, mkdir) once a later ``sync_dir`` of every directory it changed was
  issued. Nothing else makes anything durable: ext4 commits its whole journal
  on any fsync, but POSIX does not promise it, and code relying on it is
  broken on other file systems.
* An effect is recorded once its call returned; a call that raised records
  nothing.

State families, for every crash point:

``prefix``
    Everything issued persisted (a process crash: the page cache survives).
``unsynced``
    Only durable effects persisted: every unsynced write is lost, every file
    created or renamed in a directory not synced since is missing or not
    renamed (the weakest power-loss outcome POSIX allows).
``reordered``
    One effect lost while the later ones persisted, where ext4
    ``data=ordered`` does not forbid it:

    - *an unsynced write or truncate of one file*, everything else kept.
      With delayed allocation, ext4 writes back each file's dirty pages on its
      own schedule; a journal commit for another file or for a directory entry
      does not wait for them (``data=ordered`` only orders data blocks already
      allocated in the committing transaction). A later write to the same file
      that persisted over the lost one's range reads as zeros in the gap.
      This includes a rename persisting before the renamed file's unsynced
      data: ext4's ``auto_da_alloc`` heuristic flushes that data at the
      rename, but XFS and btrfs do not, so nothing may rely on it.
    - *directory changes from one effect on*, data kept. The journal commits
      directory changes in order, so a directory change is never lost while a
      later one persists; only a suffix of them after the last durable one
      can vanish, while data written meanwhile (orphaned if its file's entry
      is lost) persists.
``torn``
    The write in flight at the crash persisted only as a prefix of 1-, 3- or
    4096-byte chunks, and the region it grew the file by reads as nothing
    more, as zeros (size committed, data not) or as garbage (stale blocks).

Many writers
------------
Several handles (each with its own descriptors and writer lock, as separate
processes have) may record into one recorder. :meth:`CrashRecorder.kill_next_sync`
makes the next data sync raise :class:`SimulatedKill` instead of taking effect:
the writer died inside its ``fdatasync``, its lines written but not durable.
Close the killed handle (a dead process's descriptors and locks are released,
nothing more happens) and let the others act on what it left; the crash
states then include the power loss that follows.

Generation is deterministic: the same recording always yields the same states
in the same order (garbage comes from a hash of the effect's index). States
with identical trees are checked once, under the strictest acknowledgement.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from snapstore._log.seam import FileSystem, is_temp_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

TORN_CHUNKS = (4096, 3, 1)
FAMILIES = ("prefix", "unsynced", "reordered", "torn")

_ROOT = "."


def _parent(path: str) -> str:
    return str(PurePosixPath(path).parent)


# -- effects ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Create:
    path: str
    inode: int

    def __str__(self) -> str:
        return f"create {self.path}"


@dataclass(frozen=True, slots=True)
class Write:
    path: str
    inode: int
    offset: int
    data: bytes

    def __str__(self) -> str:
        return f"write {self.path} [{self.offset}, {self.offset + len(self.data)})"


@dataclass(frozen=True, slots=True)
class Truncate:
    path: str
    inode: int
    size: int

    def __str__(self) -> str:
        return f"truncate {self.path} to {self.size}"


@dataclass(frozen=True, slots=True)
class Sync:
    path: str
    inode: int

    def __str__(self) -> str:
        return f"sync {self.path}"


@dataclass(frozen=True, slots=True)
class SyncDir:
    path: str

    def __str__(self) -> str:
        return f"sync_dir {self.path}"


@dataclass(frozen=True, slots=True)
class Rename:
    source: str
    target: str

    def __str__(self) -> str:
        return f"rename {self.source} -> {self.target}"


@dataclass(frozen=True, slots=True)
class Link:
    source: str
    target: str

    def __str__(self) -> str:
        return f"link {self.source} -> {self.target}"


@dataclass(frozen=True, slots=True)
class Unlink:
    path: str

    def __str__(self) -> str:
        return f"unlink {self.path}"


@dataclass(frozen=True, slots=True)
class MakeDir:
    path: str

    def __str__(self) -> str:
        return f"mkdir {self.path}"


Effect = Create | Write | Truncate | Sync | SyncDir | Rename | Link | Unlink | MakeDir
DataEffect = Write | Truncate
DirectoryEffect = Create | Rename | Link | Unlink | MakeDir


def _changed_dirs(effect: DirectoryEffect) -> set[str]:
    match effect:
        case Rename(source=source, target=target):
            return {_parent(source), _parent(target)}
        case Link(target=path) | Create(path=path) | Unlink(path=path) | MakeDir(path=path):
            return {_parent(path)}


# -- the model of a directory tree ---------------------------------------------------


class _Tree:
    """Directories, names bound to inodes, and each inode's bytes."""

    __slots__ = ("data", "dirs", "names")

    def __init__(self, dirs: set[str], names: dict[str, int], data: dict[int, bytearray]) -> None:
        self.dirs = dirs
        self.names = names
        self.data = data

    def copy(self) -> _Tree:
        return _Tree(
            set(self.dirs), dict(self.names), {i: bytearray(b) for i, b in self.data.items()}
        )

    def apply(self, effect: Effect) -> None:
        # An effect whose precondition was itself lost (a rename of a name whose
        # creation did not persist) changes nothing, as on disk.
        match effect:
            case Create(path=path, inode=inode):
                self.names[path] = inode
                self.data[inode] = bytearray()
            case Write(inode=inode, offset=offset, data=data):
                self._write(inode, offset, data)
            case Truncate(inode=inode, size=size):
                self._write(inode, size, b"")
                del self.data[inode][size:]
            case Rename(source=source, target=target):
                self._bind(source, target, move=True)
            case Link(source=source, target=target):
                self._bind(source, target, move=False)
            case Unlink(path=path):
                self.names.pop(path, None)
            case MakeDir(path=path):
                self.dirs.add(path)
            case Sync() | SyncDir():
                pass

    def _bind(self, source: str, target: str, *, move: bool) -> None:
        inode = self.names.pop(source, None) if move else self.names.get(source)
        if inode is not None:
            self.names[target] = inode

    def _write(self, inode: int, offset: int, data: bytes) -> None:
        content = self.data.setdefault(inode, bytearray())
        content.extend(bytes(max(offset - len(content), 0)))  # a gap reads as zeros
        content[offset : offset + len(data)] = data

    def reachable(self, directory: str) -> bool:
        while directory != _ROOT:
            if directory not in self.dirs:
                return False
            directory = _parent(directory)
        return True

    def visible(self) -> tuple[tuple[str, ...], tuple[tuple[str, bytes], ...]]:
        """The directories and files a reader of the tree can reach, sorted."""
        dirs = tuple(sorted(d for d in self.dirs if d != _ROOT and self.reachable(d)))
        files = tuple(
            sorted(
                (path, bytes(self.data.get(inode, b"")))
                for path, inode in self.names.items()
                if self.reachable(_parent(path))
            )
        )
        return dirs, files


# -- recordings ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operation:
    """A call of the code under test: effects ``start .. end-1``.

    It is acknowledged at every crash point from ``end`` on: by then its last
    effect was issued and it returned to its caller.
    """

    label: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Recording:
    """A starting tree, the effects issued on it, and the operations that issued them.

    Crash points before ``first_crash`` are not generated: those effects come
    from a process that crashed there, and the recording continues after it.
    """

    initial: _Tree
    effects: tuple[Effect, ...]
    operations: tuple[Operation, ...]
    first_crash: int = 0

    def cut(self, crash_point: int) -> Recording:
        """This recording as a process crash at ``crash_point`` leaves it, to resume."""
        return Recording(
            self.initial,
            self.effects[:crash_point],
            tuple(op for op in self.operations if op.end <= crash_point),
            crash_point,
        )

    def replay(self, keep: Callable[[int], bool], crash_point: int) -> _Tree:
        tree = self.initial.copy()
        for index in range(crash_point):
            if keep(index):
                tree.apply(self.effects[index])
        return tree

    def initial_file(self, path: str) -> bytes | None:
        return dict(self.initial.visible()[1]).get(path)

    def acknowledged(self, crash_point: int) -> int:
        return sum(1 for op in self.operations if op.end <= crash_point)

    def listing(self, crash_point: int) -> str:
        """The effects, numbered, with operation boundaries and the crash point marked."""
        starts = {op.start: op.label for op in self.operations}
        lines = []
        for index, effect in enumerate(self.effects):
            if index in starts:
                lines.append(f"  -- {starts[index]}")
            marker = ">>" if index == crash_point else "  "
            lines.append(f"{marker}{index:4d} {effect}")
        if crash_point == len(self.effects):
            lines.append(">>  (end)")
        return "\n".join(lines)


# -- the recorder --------------------------------------------------------------


@dataclass(slots=True)
class _OpenFile:
    path: str
    inode: int
    appending: bool


class SimulatedKill(BaseException):
    """The process died here (raised in place of a sync by :meth:`CrashRecorder.kill_next_sync`).

    A BaseException, like the end of a process: no ``except Exception`` of the
    code under test handles it.
    """


class CrashRecorder(FileSystem):
    """The real file system, with every effect under ``root`` recorded.

    Install it with ``_io.installed`` *before* opening the handles under test:
    a handle keeps the file system it was opened with. Effects outside
    ``root`` are refused, except syncs of ``root``'s ancestors (harmless: the
    model assumes ``root`` itself is durable, so it must exist). ``resume``
    continues a recording cut at a process crash; ``root`` must then hold that
    cut's state.
    """

    def __init__(self, root: Path, *, resume: Recording | None = None) -> None:
        self._root = Path(root).resolve()
        if not self._root.is_dir():
            raise ValueError(f"the recorded tree {root} must be an existing directory")
        self._inodes: dict[tuple[int, int], int] = {}
        self._open: dict[int, _OpenFile] = {}
        self._effects: list[Effect] = []
        self._operations: list[Operation] = []
        self._kill_next_sync = False
        if resume is None:
            self._initial = self._snapshot()
            self._first_crash = 0
        else:
            self._initial = resume.initial
            self._effects = list(resume.effects)
            self._operations = list(resume.operations)
            self._first_crash = len(resume.effects)
            self._adopt(resume.replay(lambda _: True, len(resume.effects)))
        self._next_inode = max(self._initial.data, default=0) + 1
        for effect in self._effects:
            if isinstance(effect, Create):
                self._next_inode = max(self._next_inode, effect.inode + 1)

    @contextlib.contextmanager
    def operation(self, label: str) -> Iterator[None]:
        """Mark the effects of one call; a call that raises is never acknowledged."""
        start = len(self._effects)
        yield
        self._operations.append(Operation(label, start, len(self._effects)))

    def kill_next_sync(self) -> None:
        """Make the next ``sync`` raise :class:`SimulatedKill` before it has any effect."""
        self._kill_next_sync = True

    def recording(self) -> Recording:
        return Recording(
            self._initial, tuple(self._effects), tuple(self._operations), self._first_crash
        )

    # -- primitives: call the OS, then record what it did ------------------------

    def open_log(self, path: Path) -> tuple[int, bool]:
        fd, created = super().open_log(path)
        self._track(fd, path, appending=True, created=created)
        return fd, created

    def open_read(self, path: Path) -> int:
        fd = super().open_read(path)
        self._track(fd, path, appending=False, created=False)
        return fd

    def open_lock(self, path: Path) -> tuple[int, bool]:
        fd, created = super().open_lock(path)
        self._track(fd, path, appending=False, created=created)
        return fd, created

    def open_temp(self, directory: Path, target: str) -> tuple[int, Path]:
        fd, path = super().open_temp(directory, target)
        self._track(fd, path, appending=False, created=True)
        return fd, path

    def write(self, fd: int, data: bytes) -> None:
        opened = self._open[fd]
        # O_APPEND writes land at the end, whatever the file position says.
        offset = os.fstat(fd).st_size if opened.appending else os.lseek(fd, 0, os.SEEK_CUR)
        super().write(fd, data)
        self._effects.append(Write(opened.path, opened.inode, offset, bytes(data)))

    def write_at(self, fd: int, data: bytes, offset: int) -> None:
        super().write_at(fd, data, offset)
        opened = self._open[fd]
        self._effects.append(Write(opened.path, opened.inode, offset, bytes(data)))

    def sync(self, fd: int) -> None:
        if self._kill_next_sync:
            self._kill_next_sync = False
            raise SimulatedKill(f"killed inside the sync of {self._open[fd].path}")
        super().sync(fd)
        opened = self._open[fd]
        self._effects.append(Sync(opened.path, opened.inode))

    def sync_dir(self, path: Path) -> None:
        super().sync_dir(path)
        relative = self._relative(path)
        if relative is not None:
            self._effects.append(SyncDir(relative))

    def truncate(self, fd: int, size: int) -> None:
        super().truncate(fd, size)
        opened = self._open[fd]
        self._effects.append(Truncate(opened.path, opened.inode, size))

    def close(self, fd: int) -> None:
        super().close(fd)
        del self._open[fd]

    def replace(self, source: Path, target: Path) -> None:
        super().replace(source, target)
        self._effects.append(Rename(self._inside(source), self._inside(target)))

    def link(self, source: Path, target: Path) -> None:
        super().link(source, target)
        self._effects.append(Link(self._inside(source), self._inside(target)))

    def unlink(self, path: Path) -> None:
        super().unlink(path)
        self._effects.append(Unlink(self._inside(path)))

    def mkdir(self, path: Path) -> None:
        super().mkdir(path)
        self._effects.append(MakeDir(self._inside(path)))

    # -- bookkeeping --------------------------------------------------------------

    def _track(self, fd: int, path: Path, *, appending: bool, created: bool) -> None:
        relative = self._inside(path)
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        if created:
            # A new inode, even if the OS reuses the number of one unlinked earlier.
            self._inodes[key] = self._next_inode
            self._next_inode += 1
            self._effects.append(Create(relative, self._inodes[key]))
        elif key not in self._inodes:
            raise ValueError(f"{path} was created outside the recorded file system")
        self._open[fd] = _OpenFile(relative, self._inodes[key], appending)

    def _relative(self, path: Path) -> str | None:
        absolute = Path(path).resolve()
        if not absolute.is_relative_to(self._root):
            if self._root.is_relative_to(absolute):
                return None  # syncing an ancestor of the root: nothing to model
            raise ValueError(f"{path} is outside the recorded tree {self._root}")
        return absolute.relative_to(self._root).as_posix()

    def _inside(self, path: Path) -> str:
        relative = self._relative(path)
        if relative is None:
            raise ValueError(f"{path} is outside the recorded tree {self._root}")
        return relative

    def _snapshot(self) -> _Tree:
        tree = _Tree({_ROOT}, {}, {})
        for directory, subdirs, files in os.walk(self._root):
            base = Path(directory)
            for name in subdirs:
                tree.dirs.add(self._inside(base / name))
            for name in files:
                st = (base / name).stat()
                inode = self._inodes.setdefault((st.st_dev, st.st_ino), len(self._inodes) + 1)
                tree.names[self._inside(base / name)] = inode
                tree.data[inode] = bytearray((base / name).read_bytes())
        return tree

    def _adopt(self, tree: _Tree) -> None:
        """Bind the files under the root to the inodes of ``tree``, which they must match."""
        if self._snapshot().visible() != tree.visible():
            raise ValueError(f"{self._root} does not hold the state the recording was cut at")
        self._inodes.clear()
        for path, inode in tree.names.items():
            if tree.reachable(_parent(path)):
                st = (self._root / path).stat()
                self._inodes[(st.st_dev, st.st_ino)] = inode


# -- crash states -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CrashState:
    """One tree a crash can leave, and how many operations had been acknowledged.

    ``families``: every family that produced this tree; the description is of
    the first candidate with the most acknowledged operations.
    """

    families: tuple[str, ...]
    description: str
    crash_point: int
    acknowledged: int
    dirs: tuple[str, ...]
    files: tuple[tuple[str, bytes], ...]

    def file(self, path: str) -> bytes | None:
        return dict(self.files).get(path)

    def materialize(self, target: Path) -> None:
        """Write the tree into ``target`` (created; it must not exist).

        Plain writes, no syncs: the copy only has to survive this test process.
        """
        target.mkdir(parents=True)
        for directory in self.dirs:
            (target / directory).mkdir()
        for path, data in self.files:
            (target / path).write_bytes(data)

    def key(self) -> bytes:
        digest = hashlib.sha256()
        for directory in self.dirs:
            digest.update(b"d%d:%s\0" % (len(directory), directory.encode()))
        for path, data in self.files:
            digest.update(b"f%d:%s%d:" % (len(path), path.encode(), len(data)))
            digest.update(data)
        return digest.digest()


def process_crash(recording: Recording, crash_point: int) -> CrashState:
    """What a process crash at ``crash_point`` leaves: every issued effect, in the page cache.

    To continue from it, materialize it and record the next process with
    ``CrashRecorder(root, resume=recording.cut(crash_point))``: the effects it
    had not synced stay volatile in the continued recording.
    """
    tree = recording.replay(lambda _: True, crash_point)
    return _state_of(recording, "prefix", "the process died", crash_point, tree)


def crash_states(
    recording: Recording, *, chunks: tuple[int, ...] = TORN_CHUNKS
) -> list[CrashState]:
    """Every distinct crash state of ``recording``, in a deterministic order.

    ``chunks``: the sizes the in-flight write is torn into. Of several
    candidates with the same tree, the one with the most acknowledged
    operations is kept: it is checked against the most promises.
    """
    kept: dict[bytes, CrashState] = {}
    for state in _Generator(recording, chunks).candidates():
        key = state.key()
        known = kept.get(key)
        if known is None:
            kept[key] = state
            continue
        best = state if state.acknowledged > known.acknowledged else known
        families = tuple(f for f in FAMILIES if f in known.families or f in state.families)
        kept[key] = dataclasses.replace(best, families=families)
    return list(kept.values())


class _Generator:
    def __init__(self, recording: Recording, chunks: tuple[int, ...]) -> None:
        self.recording = recording
        self.chunks = chunks
        self.effects = recording.effects
        self.durable_at = [self._durable_at(index) for index in range(len(self.effects))]

    def candidates(self) -> Iterator[CrashState]:
        for point in range(self.recording.first_crash, len(self.effects) + 1):
            yield self._state("prefix", "everything issued persisted", point, lambda _: True)
            yield self._state(
                "unsynced", "only synced effects persisted", point, self._synced_by(point)
            )
            yield from self._reordered(point)
        for index in range(self.recording.first_crash, len(self.effects)):
            if isinstance(self.effects[index], Write):
                yield from self._torn(index)

    def _durable_at(self, index: int) -> int:
        """The index after which effect ``index`` is durable (len(effects) if never)."""
        effect = self.effects[index]
        never = len(self.effects)
        if isinstance(effect, DataEffect):
            return next(
                (
                    later
                    for later in range(index + 1, never)
                    if isinstance(s := self.effects[later], Sync) and s.inode == effect.inode
                ),
                never,
            )
        if isinstance(effect, Sync | SyncDir):
            return index
        pending = _changed_dirs(effect)
        for later in range(index + 1, never):
            synced = self.effects[later]
            if isinstance(synced, SyncDir):
                pending.discard(synced.path)
                if not pending:
                    return later
        return never

    def _durable(self, index: int, point: int) -> bool:
        return self.durable_at[index] < point

    def _reordered(self, point: int) -> Iterator[CrashState]:
        last_durable_dir_change = max(
            (
                i
                for i in range(point)
                if isinstance(self.effects[i], DirectoryEffect) and self._durable(i, point)
            ),
            default=-1,
        )
        for lost in range(point):
            effect = self.effects[lost]
            if self._durable(lost, point):
                continue
            if isinstance(effect, DataEffect):
                yield self._state(
                    "reordered",
                    f"effect {lost} ({effect}) lost, later effects persisted",
                    point,
                    self._all_but(lost),
                )
            elif isinstance(effect, DirectoryEffect) and lost > last_durable_dir_change:
                yield self._state(
                    "reordered",
                    f"directory changes from effect {lost} ({effect}) on lost, data persisted",
                    point,
                    self._data_only_from(lost),
                )

    def _synced_by(self, point: int) -> Callable[[int], bool]:
        return lambda index: self._durable(index, point)

    def _all_but(self, lost: int) -> Callable[[int], bool]:
        return lambda index: index != lost

    def _data_only_from(self, lost: int) -> Callable[[int], bool]:
        return lambda index: index < lost or not isinstance(self.effects[index], DirectoryEffect)

    def _torn(self, index: int) -> Iterator[CrashState]:
        write = self.effects[index]
        assert isinstance(write, Write)
        base = self.recording.replay(lambda _: True, index)
        garbage = hashlib.shake_256(b"snapstore crash garbage %d" % index).digest(len(write.data))
        chunks = self.chunks
        if is_temp_name(PurePosixPath(write.path).name):
            # A torn write is the last effect of its state, so a torn temp file
            # is never published (renamed or linked into place): its tearing
            # only varies a file no reader opens. One granularity suffices.
            chunks = (max(chunks),)
        for chunk in chunks:
            for kept in range(0, len(write.data), chunk):
                for fill in ("nothing", "zeros", "garbage"):
                    tree = base.copy()
                    tree.apply(Write(write.path, write.inode, write.offset, write.data[:kept]))
                    grown = tree.data[write.inode]
                    end = write.offset + len(write.data)
                    if fill != "nothing" and end > len(grown):
                        filler = garbage if fill == "garbage" else bytes(len(write.data))
                        grown.extend(filler[len(grown) - write.offset :])
                    yield _state_of(
                        self.recording,
                        "torn",
                        f"effect {index} ({write}) torn: {kept}/{len(write.data)} bytes "
                        f"persisted in {chunk}-byte chunks, the rest of the grown region "
                        f"reads as {fill}",
                        index,
                        tree,
                    )

    def _state(self, family: str, what: str, point: int, keep: Callable[[int], bool]) -> CrashState:
        return _state_of(self.recording, family, what, point, self.recording.replay(keep, point))


def _state_of(recording: Recording, family: str, what: str, point: int, tree: _Tree) -> CrashState:
    dirs, files = tree.visible()
    acknowledged = recording.acknowledged(point)
    return CrashState(
        (family,),
        f"[{family}] crash before effect {point}/{len(recording.effects)}: {what}; "
        f"{acknowledged}/{len(recording.operations)} operations acknowledged",
        point,
        acknowledged,
        dirs,
        files,
    )


# -- checking ----------------------------------------------------------------------


class CrashCheckError(AssertionError):
    """A crash state broke a promise; the message says which state and why."""


@dataclass(frozen=True, slots=True)
class CrashReport:
    """How many distinct crash states were checked, and how many each family produced."""

    states: int
    by_family: Mapping[str, int]


def check_crash_states(
    recording: Recording,
    workdir: Path,
    check: Callable[[CrashState, Path], None],
    *,
    chunks: tuple[int, ...] = TORN_CHUNKS,
    workers: int = 8,
) -> CrashReport:
    """Materialize every crash state under ``workdir`` and run ``check`` on it.

    States are checked by ``workers`` threads (the checks mostly wait for
    syncs). The first failing state, in generation order, raises
    :class:`CrashCheckError` naming the state and listing the recorded
    effects around its crash point; its directory is left for inspection.
    """
    states = crash_states(recording, chunks=chunks)
    roots = [workdir / f"state-{number:05d}" for number in range(len(states))]

    def run(number: int) -> None:
        states[number].materialize(roots[number])
        check(states[number], roots[number])
        shutil.rmtree(roots[number])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = pool.map(run, range(len(states)))
        for state, root in zip(states, roots, strict=True):
            try:
                next(outcomes)
            except Exception as exc:
                pool.shutdown(cancel_futures=True)
                raise CrashCheckError(
                    f"{state.description}\nleft in {root}\n"
                    f"{recording.listing(state.crash_point)}\n{type(exc).__name__}: {exc}"
                ) from exc
    return CrashReport(len(states), {f: sum(f in s.families for s in states) for f in FAMILIES})
