#!/usr/bin/env python3
"""Extracts the outlines of the 101 French départements from the MapChart component of
@gouvfr/dsfr-chart (the French State design system's charts, MIT licence) into
api/assets/dashboard/departements.json, served by /dashboard.

The outlines there are already simplified and projected (integer SVG coordinates, about
26 KB for metropolitan France), which is what a dashboard needs: no GIS library, no tile
server, no outside address.

    npm pack @gouvfr/dsfr-chart@2.0.4 && tar xzf gouvfr-dsfr-chart-2.0.4.tgz
    python3 tools/extract_departements.py package/dist/MapChart/MapChart.js
"""
import json
import pathlib
import re
import sys

OVERSEAS = ["971", "972", "973", "974", "976"]


def main(source: str) -> None:
    js = pathlib.Path(source).read_text()
    paths = re.findall(r'class: "FR-([0-9AB]+)",\s*(?:style: [^\n]*\n\s*)?d: "([^"]+)"', js)
    shapes = dict(paths)
    if len(shapes) != 101:
        sys.exit(f"expected 101 départements, found {len(shapes)}")
    overseas = []
    for code in OVERSEAS:
        at = js.find(f'class: "FR-{code}"')
        view_box = re.findall(r'viewBox: "([^"]+)"', js[:at])[-1]
        overseas.append({"code": code, "viewBox": view_box, "d": shapes.pop(code)})
    out = {
        "source": "@gouvfr/dsfr-chart 2.0.4, MapChart (MIT licence, see LICENCE-carte.txt)",
        "viewBox": "0 0 1010 1010",
        "metropole": dict(sorted(shapes.items())),
        "overseas": overseas,
    }
    target = pathlib.Path(__file__).resolve().parent.parent / "api/assets/dashboard/departements.json"
    target.write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"{target}: {len(out['metropole'])} + {len(overseas)} départements, {target.stat().st_size} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
