"""Parses a run's report.html with Python's HTML parser and prints what it holds as JSON:
the MAP table rows, the number of SVG plots and images, and every retrieval example row
(its section, verdict, and the relevance of each hit). Usage: check_report.py report.html"""
import json
import sys
from html.parser import HTMLParser


class Report(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack = []
        self.section = None
        self.maps = []  # rows of table.maps: lists of cell texts
        self.svgs = 0
        self.imgs = 0
        self.examples = []  # {"section", "verdict", "hits": ["good"|"bad"|""]}
        self.cell = None
        self.row = None
        self.in_maps = False
        self.external = []  # src/href that leave the page

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        self.stack.append(tag)
        if tag == "h2":
            self.section = a.get("id")
        if tag == "svg":
            self.svgs += 1
        if tag == "img":
            self.imgs += 1
        for k in ("src", "href"):
            v = a.get(k)
            if v and not v.startswith("data:") and not v.startswith("#"):
                self.external.append(v)
        if tag == "link" or tag == "script" and a.get("src"):
            self.external.append(a.get("href") or a.get("src"))
        if tag == "table" and "maps" in cls:
            self.in_maps = True
        if tag == "tr" and self.in_maps:
            self.row = []
        if tag in ("td", "th") and self.row is not None:
            self.cell = ""
        if tag == "tr" and "example" in cls:
            self.examples.append({"section": self.section, "verdict": "success" if "success" in cls else "failure", "hits": []})
        if tag == "td" and "hit" in cls and self.examples:
            self.examples[-1]["hits"].append("good" if "good" in cls else "bad" if "bad" in cls else "")

    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()
        if tag in ("td", "th") and self.row is not None and self.cell is not None:
            self.row.append(self.cell.strip())
            self.cell = None
        if tag == "tr" and self.row is not None:
            if self.row:
                self.maps.append(self.row)
            self.row = None
        if tag == "table":
            self.in_maps = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


p = Report()
with open(sys.argv[1], encoding="utf-8") as f:
    p.feed(f.read())
p.close()
print(json.dumps({"maps": p.maps, "svgs": p.svgs, "imgs": p.imgs, "examples": p.examples, "external": p.external}))
