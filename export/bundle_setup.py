"""Set-up of the default edge bundle (issue 23): `binaura export bundle --precision int4` of the
shipped language model and encoder, built once into the user cache where
agent/answer/default_bundle.py names it, so `ask`, `demo` and `listen` answer through ONNX
Runtime on a fresh clone.

    python -m export.bundle_setup --ensure [--quiet]

Needs the base LLM in the user cache first (`python -m training.models.llm_setup --ensure`;
`make setup` runs both). Two processes at once build it once (a lock, then a second look).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from agent.answer.default_bundle import DEFAULT_NAME, PRECISION, default_bundle_dir, is_built
from agent.core.errors import BinauraError
from training.models.wheel_fetch import build_once, ensure_main


def default_parts() -> tuple[Path, Path]:
    """(the shipped language-model folder, the shipped encoder folder)."""
    from agent.localize.encoder import DEFAULT_ENCODER_DIR  # noqa: PLC0415
    from export.lalm_cli import DEFAULT_MODEL, model_folder  # noqa: PLC0415

    if model_folder(DEFAULT_MODEL) is None:
        raise BinauraError(f"no language model at {DEFAULT_MODEL}: the shipped default is missing from this checkout")
    return DEFAULT_MODEL, DEFAULT_ENCODER_DIR


def ensure_default_bundle(progress: bool = True) -> Path:
    """The default bundle's folder, built first if missing (about a minute on 2 cores)."""
    model, encoder = default_parts()
    final = default_bundle_dir(model, encoder)

    def build() -> None:
        from export.bundle import build_llm_bundle  # noqa: PLC0415
        from export.llm_export import LlmExportConfig  # noqa: PLC0415

        if progress:
            print(f"building the default edge bundle (int4) into {final} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        build_llm_bundle(final, lalm=str(model), cfg=LlmExportConfig(precisions=(PRECISION,)), encoder=encoder)
        if progress:
            print(f"default edge bundle built in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    build_once(final, is_built, build, ".default-bundle.lock")
    return final


def built_default_bundle() -> Path | None:
    """The default bundle's folder when set-up built it for the shipped parts of this checkout,
    else None."""
    try:
        folder = default_bundle_dir(*default_parts())
    except BinauraError:
        return None
    return folder if is_built(folder) else None


def resolve_bundle(folder: str | Path) -> Path:
    """A bundle folder named on the command line; `default` is the default bundle, refused with
    the command that builds it when set-up has not."""
    if str(folder) != DEFAULT_NAME:
        return Path(folder)
    built = built_default_bundle()
    if built is None:
        raise BinauraError("the default edge bundle is not built for this checkout's model and encoder: "
                           "`make setup` (or `python -m export.bundle_setup --ensure`, about a minute) builds it")
    return built


def main(argv: list[str] | None = None) -> int:
    return ensure_main(argv, "python -m export.bundle_setup", __doc__.split("\n")[0],
                       "build the default bundle if missing; print its folder", ensure_default_bundle)


if __name__ == "__main__":
    raise SystemExit(main())
