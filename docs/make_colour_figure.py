"""The colour page's picture: a photo stored in Display P3 (as an iPhone stores it), read as if it were sRGB
(the old behaviour: dull) and read by style-daemon (converted by its profile: as taken).

    python docs/make_colour_figure.py     # writes docs/colour_p3.jpg from ../shared/images/content/tubingen.jpg
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from daemon.media import icc
from daemon.media.colour import SRGB_PROFILE
from daemon.media.images import load_image
from daemon.review.contact_sheet import Panel, contact_sheet

HERE = Path(__file__).resolve().parent
PHOTO = HERE.parents[1] / "shared" / "images" / "content" / "tubingen.jpg"


def main() -> None:
    photo = Image.open(PHOTO).convert("RGB")
    photo.thumbnail((480, 480))
    p3 = icc.build_profile(icc.DISPLAY_P3)
    # The same colours stored as a phone stores them: the values of Display P3, tagged with its profile.
    stored = ImageCms.profileToProfile(photo, ImageCms.ImageCmsProfile(io.BytesIO(SRGB_PROFILE)),
                                       ImageCms.ImageCmsProfile(io.BytesIO(p3)), renderingIntent=1)
    buffer = io.BytesIO()
    stored.save(buffer, format="PNG", icc_profile=p3)
    panels = [Panel(np.asarray(photo, np.float32), "the scene"),
              Panel(np.asarray(stored, np.float32), "P3 file taken as sRGB"),
              Panel(load_image(buffer).rgb, "read by style-daemon")]
    contact_sheet(panels, height=220).save(HERE / "colour_p3.jpg", quality=88, icc_profile=SRGB_PROFILE)


if __name__ == "__main__":
    main()
