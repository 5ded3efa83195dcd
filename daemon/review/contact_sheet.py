"""Side-by-side pictures (content | style(s) | result), labelled, made with Pillow."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from daemon.media.atomic import write_atomic
from daemon.media.colour import SRGB_PROFILE
from daemon.media.path_text import display
from daemon.engine.params import TransferParams


@dataclass(frozen=True)
class Panel:
    """One labelled picture of a sheet (float or uint8 RGB array)."""

    rgb: np.ndarray
    label: str


# The gallery page shows sheets at most this wide (review/gallery.py's CSS uses the same number).
GALLERY_WIDTH = 520
# Labels stay at least this many pixels tall as shown on the gallery page (browsers' small text is ~11-12 px).
MIN_LABEL_PX = 13


def label_font_size(sheet_width: int, display_width: int = GALLERY_WIDTH) -> int:
    """Font size (px) for a sheet `sheet_width` wide, so that labels read MIN_LABEL_PX once the page scales it down."""
    shrink = max(sheet_width / display_width, 1.0)
    return math.ceil(MIN_LABEL_PX * shrink)


def contact_sheet(panels: list[Panel], height: int = 240, caption: str = "") -> Image.Image:
    """Panels scaled to one height, side by side, each labelled underneath; optional caption."""
    images = [_scaled(p.rgb, height) for p in panels]
    gap = 6
    width = sum(i.width for i in images) + gap * (len(images) + 1)
    font = _font(label_font_size(width))
    label_h = round(font.size * 1.4)  # a line of text with its descenders, and a little air
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    caption_lines = _wrap(measure, caption, width - 2 * gap, font) if caption else []
    caption_h = label_h * len(caption_lines)
    sheet = Image.new("RGB", (width, height + label_h + caption_h + 2 * gap), "white")
    draw = ImageDraw.Draw(sheet)
    x = gap
    for image, panel in zip(images, panels):
        sheet.paste(image, (x, gap))
        draw.text((x, gap + height + 3), _fit(draw, panel.label, image.width, font), fill="black", font=font)
        x += image.width + gap
    for row, line in enumerate(caption_lines):
        draw.text((gap, gap + height + label_h * (row + 1) + 2), line, fill="#444", font=font)
    return sheet


def _wrap(draw: ImageDraw.ImageDraw, text: str, width: int, font, max_lines: int = 2) -> list[str]:
    """`text` in lines that fit `width`, broken after commas; the last line shortened if still too long."""
    lines: list[str] = []
    for part in text.split(", "):
        joined = f"{lines[-1]}, {part}" if lines else part
        if lines and draw.textlength(joined, font=font) <= width:
            lines[-1] = joined
        else:
            lines.append(part)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [", ".join(lines[max_lines - 1:])]
    return [_fit(draw, line, width, font) for line in lines]


# Pillow's built-in font has no accents; a system DejaVu (most Linux machines) labels any Latin name.
_FONT_CANDIDATES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "DejaVuSans.ttf",
                    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf")


def _font(size: int = 11):
    for candidate in _FONT_CANDIDATES:
        try:
            return ImageFont.truetype(candidate, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _scaled(rgb: np.ndarray, height: int) -> Image.Image:
    image = Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
    width = max(1, round(image.width * height / image.height))
    return image.resize((width, height), Image.LANCZOS)


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> str:
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text


SHEET_SUFFIX = ".sheet.jpg"


def sheet_path(output: Path) -> Path:
    """Where the contact sheet of `output` goes: photo.starry.jpg -> photo.starry.jpg.sheet.jpg."""
    return output.with_name(output.name + SHEET_SUFFIX)


def write_contact_sheet(output: Path, content: np.ndarray, styles: list[tuple[str, np.ndarray]],
                        result: np.ndarray, content_name: str, style_set: str, params: TransferParams,
                        backbone: str, seconds: float, scales_run: Sequence[tuple[int, int]] = ()) -> Path:
    """content | style(s) | result, labelled with names and the key parameters, as a small JPEG."""
    # Names may hold any bytes, newlines included: labels show them escaped on one line.
    panels = [Panel(content, display(content_name))]
    panels += [Panel(rgb, display(name)) for name, rgb in styles]
    panels.append(Panel(result, display(f"{style_set}: {output.name}")))
    # The scales that ran, not those asked: a small photo is not upscaled and runs fewer.
    scales = len(scales_run) or params.scales
    caption = (f"{backbone}, {result.shape[1]}x{result.shape[0]} px, {params.iterations} it x {scales} "
               f"scale{'s' if scales != 1 else ''}, style weight {params.style_weight:g}, colors {params.preserve_colors}, {seconds:.0f}s")
    sheet = contact_sheet(panels, height=160, caption=caption)
    target = sheet_path(output)
    buffer = io.BytesIO()
    sheet.save(buffer, format="JPEG", quality=80, icc_profile=SRGB_PROFILE)  # its pictures are all sRGB
    write_atomic(target, buffer.getvalue())
    return target
