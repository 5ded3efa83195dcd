"""Rebuild the README pictures from results the project made: python docs/make_figures.py RESULT..."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from daemon.review.contact_sheet import Panel, contact_sheet
from daemon.media.images import load_image


def main(results: list[str], target: str) -> None:
    panels = []
    for index, result in enumerate(results):
        doc = json.loads(Path(result + ".json").read_text())
        if index == 0:
            panels.append(Panel(load_image(Path(doc["content"]["path"])).rgb, "content"))
            for style in doc["styles"]:
                panels.append(Panel(load_image(Path(style["path"])).rgb, "style"))
        params = doc["parameters"]
        label = f"{doc['backbone']['name']}, {params['max_size']}px, {doc['result']['seconds']:.0f}s"
        panels.append(Panel(load_image(Path(result)).rgb, label))
    contact_sheet(panels, height=200).save(target, quality=85)


if __name__ == "__main__":
    main(sys.argv[2:], sys.argv[1])
