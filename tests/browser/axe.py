"""axe-core in the page as the page is: injected with `page.evaluate`, so the page's own
Content-Security-Policy stays in force (add_script_tag would be refused by it, and bypassing
the CSP would test another page than the one people get)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

AXE_SOURCE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.slice(0, 4).map(n => n.target.join(" ") + " :: " +
      (n.failureSummary || "").replace(/\\s+/g, " ").slice(0, 160)),
  }));
}"""


def violations(page: Page) -> list[str]:
    """Every axe-core violation on the page, of any impact, one line each."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SOURCE)
    found = page.evaluate(_RUN)
    return [f"{v['id']} ({v['impact']}): {v['help']} at {v['targets']}" for v in found]


def sideways_overflow(page: Page) -> int:
    """How many CSS pixels the page scrolls sideways (0: none)."""
    return int(page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"))
