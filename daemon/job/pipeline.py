"""One stylisation from files to files: read inputs, run the engine, publish the result and its sidecar as one
unit (job/publish.py)."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timezone
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

from daemon.engine.params import MIN_SIDE, Progress, StyleImage, TransferParams, TransferResult
from daemon.engine.protocol import Engine
from daemon.media.atomic import publish_exclusive
from daemon.media.images import DEFAULT_MAX_PIXELS, OUTPUT_FORMATS, LoadedImage, encode_image, load_image
from daemon.media.metadata import (DEFAULT_POLICY, MetadataRecord, PhotoMetadata, ResultMetadata, encode_result,
                                   read_metadata, result_metadata, style_note)
from daemon.media.hashing import sha256_file, sha256_handle
from daemon.media.style_images import load_style_image
from daemon.media.path_text import display, to_text
from daemon.job.publish import free_names, make_payload, publish_unit
from daemon.job.sidecar import BackboneRecord, EncodingRecord, InputRecord, JobTimes, build_sidecar
from daemon.review.contact_sheet import write_contact_sheet
from daemon.errors import BadInputError, ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StyleRef:
    """A style image on disk and its blend weight."""

    path: Path
    weight: float = 1.0


@dataclass(frozen=True)
class StylizeRequest:
    """Everything one output needs."""

    content: Path
    styles: tuple[StyleRef, ...]
    output: Path
    params: TransferParams = field(default_factory=TransferParams)
    quality: int = 92
    metadata: str = DEFAULT_POLICY  # keep, private or none: the photo's EXIF and XMP in the result
    style_set: str = "cli"
    max_input_pixels: int = DEFAULT_MAX_PIXELS
    contact_sheet: bool = False
    content_sha256: str | None = None  # already known (the daemon's job key): not hashed again
    content_file: BinaryIO | None = None  # the daemon's input, opened by safe_open: read only through it
    params_hash: str | None = None  # the daemon's fingerprint of the style set, recorded in the sidecar
    generation: int = 0
    name_taken: Callable[[Path], bool] | None = None  # names held by other queued jobs (the daemon's store)
    command_line: str | None = None  # the stylize command as typed, recorded in the sidecar
    # Gets the publish intent's payload (JSON, job/publish.py) before the result is linked: the daemon records
    # it in its job store (and raises to abort, e.g. its claim on the job lapsed); the CLI passes none.
    before_link: Callable[[str], None] | None = None


@dataclass(frozen=True)
class LoadedInputs:
    """The decoded photo and style images of a request, checked before any model is loaded."""

    content: LoadedImage
    styles: tuple[StyleImage, ...]
    metadata: PhotoMetadata = PhotoMetadata()  # the photo's EXIF and XMP, as read (media/metadata.py)


@dataclass(frozen=True)
class StylizeOutcome:
    """Paths written and the headline figures."""

    output: Path
    sidecar: Path
    seconds: float
    iterations: int
    backbone: str


def check_output_path(path: Path) -> None:
    """Raise ConfigError unless the extension names a supported output format."""
    if path.suffix.lower().lstrip(".").replace("jpeg", "jpg") not in OUTPUT_FORMATS:
        raise ConfigError(f"output {path} must end in .jpg, .png or .webp")


LOSSY_FORMATS = ("JPEG", "WEBP")  # the formats --quality applies to


def output_format(path: Path) -> str:
    """The encoding a result path gets: JPEG, PNG or WEBP (Pillow's names)."""
    return OUTPUT_FORMATS[path.suffix.lower().lstrip(".").replace("jpeg", "jpg")]


def snapshot_path(output: Path, iteration: int) -> Path:
    """Where an intermediate result goes: out.jpg -> out.iter0100.jpg."""
    return output.with_name(f"{output.stem}.iter{iteration:04d}{output.suffix}")


def _snapshot_writer(request: StylizeRequest):
    if not request.params.save_every:
        return None

    def write(iteration: int, image) -> None:
        # An intermediate, not a result: no sidecar and no intent; still never replaces a file.
        data = encode_image(image, request.output.suffix, request.quality)
        snapshot = snapshot_path(request.output, iteration)
        publish_exclusive(free_names(snapshot, request.name_taken), lambda handle: handle.write(data))

    return write


def _load_content(request: StylizeRequest):
    if request.content_file is not None:
        return load_image(request.content_file, request.max_input_pixels, name=request.content)
    return load_image(request.content, request.max_input_pixels)


def _content_sha(request: StylizeRequest) -> str:
    if request.content_file is not None:
        return sha256_handle(request.content_file)
    return sha256_file(request.content)


def load_inputs(request: StylizeRequest) -> LoadedInputs:
    """Decode the photo and every style image; BadInputError (one line) for a photo that cannot be used,
    StyleUnavailable for a style image that cannot (the style set's fault, not the photo's)."""
    content = _load_content(request)
    if min(content.size) < MIN_SIDE:
        # The photo itself is too small: no setting helps, so do not send people to max_size.
        raise BadInputError(f"{display(request.content)}: photo is too small ({content.size[0]}x{content.size[1]} px); "
                            f"its shorter side must be at least {MIN_SIDE} px - use a larger photo")
    # A style image's fault is the configuration's (StyleUnavailable: the job waits), never the photo's.
    style_set = None if request.style_set == "cli" else request.style_set
    styles = tuple(StyleImage(load_style_image(s.path, style_set, request.max_input_pixels).rgb, s.weight,
                              s.path.name) for s in request.styles)
    photo = request.content_file if request.content_file is not None else request.content
    return LoadedInputs(content, styles, read_metadata(photo))


def _say_not_upscaled(request: StylizeRequest, content: LoadedImage) -> None:
    width, height = content.size
    if max(width, height) < request.params.max_size:
        log.info("%s is %dx%d px, smaller than the %d px asked: it is not upscaled, the result is %d px",
                 display(request.content.name), width, height, request.params.max_size, max(width, height))


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Stylized:
    """A run's result in memory, not yet published: the inputs it was made from and when it began."""

    inputs: LoadedInputs
    result: TransferResult
    started: str


def run_stylize(
    engine: Engine,
    request: StylizeRequest,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    inputs: LoadedInputs | None = None,
) -> StylizeOutcome:
    """Stylise request.content into request.output; BadInputError for unusable inputs."""
    return publish_result(engine, request, stylise(engine, request, on_progress, should_stop, inputs))


def stylise(
    engine: Engine,
    request: StylizeRequest,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    inputs: LoadedInputs | None = None,
) -> Stylized:
    """Run the engine on the request's photo and styles; nothing but snapshots is written."""
    started = _utc_now()
    check_output_path(request.output)
    inputs = inputs or load_inputs(request)
    _say_not_upscaled(request, inputs.content)
    result = engine.stylize(inputs.content.rgb, list(inputs.styles), request.params, on_progress, should_stop,
                            on_snapshot=_snapshot_writer(request))
    return Stylized(inputs, result, started)


def publish_result(engine: Engine, request: StylizeRequest, stylized: Stylized) -> StylizeOutcome:
    """Publish the result and its sidecar as one unit (job/publish.py), then its contact sheet if asked."""
    content, result = stylized.inputs.content, stylized.result
    metadata = _result_metadata(request, stylized.inputs.metadata)
    data = encode_result(result.rgb, request.output.suffix, metadata, request.quality, content.alpha)
    payload = make_payload(request.output, data, _sidecar_document(engine, request, result, stylized.started,
                                                                   metadata.record))
    published = publish_unit(data, payload, free_names(request.output, request.name_taken), request.before_link)
    output = published.output
    if output != request.output:
        log.info("%s is taken; wrote the result as %s", request.output.name, output.name)
    if request.contact_sheet:
        _write_sheet(engine, request, stylized, output)
    return StylizeOutcome(output, published.sidecar, result.seconds, result.iterations, engine.source.backbone)


def _write_sheet(engine: Engine, request: StylizeRequest, stylized: Stylized, output: Path) -> None:
    """The contact sheet beside a published result; a sheet that cannot be written never undoes the result."""
    styles, result = stylized.inputs.styles, stylized.result
    try:
        write_contact_sheet(output, stylized.inputs.content.rgb, [(s.path.name, img.rgb) for s, img in
                            zip(request.styles, styles)], result.rgb, request.content.name,
                            request.style_set, request.params, engine.source.backbone, result.seconds,
                            scales_run=result.scale_sizes)
    except Exception as exc:  # noqa: BLE001 - only a view of a complete result: never fail the job for it
        log.warning("no contact sheet for %s: %s (the gallery shows the result itself)", output.name, exc,
                    exc_info=None if isinstance(exc, OSError) else exc)


def _result_metadata(request: StylizeRequest, photo: PhotoMetadata) -> ResultMetadata:
    """The photo's metadata as the request's policy allows, with the software tag and the style note."""
    style_set = None if request.style_set == "cli" else request.style_set
    return result_metadata(photo, request.metadata, style_note(style_set, [s.path.name for s in request.styles]))


def _sidecar_document(engine: Engine, request: StylizeRequest, result: TransferResult, started: str,
                      metadata: MetadataRecord) -> dict:
    """The result's sidecar, its output the name asked for (publish_unit fills in the one it gets)."""
    source, fmt = engine.source, output_format(request.output)
    document = build_sidecar(
        output=request.output.absolute(),
        content=InputRecord(to_text(request.content.absolute()), request.content_sha256 or _content_sha(request)),
        styles=[InputRecord(to_text(s.path.absolute()), sha256_file(s.path), s.weight) for s in request.styles],
        style_set=request.style_set,
        backbone=BackboneRecord(source.backbone, source.origin, str(source.path), source.sha256()),
        params=request.params,
        result=result,
        device=engine.device(),
        keras_backend=engine.backend(),
        params_hash=request.params_hash,
        generation=request.generation,
        times=JobTimes(started, _utc_now()),
        encoding=EncodingRecord(fmt, request.quality if fmt in LOSSY_FORMATS else None),
        command_line=request.command_line,
    )
    document["metadata"] = dataclasses.asdict(metadata)  # the policy applied and what it removed
    return document
