"""The PDF printer: headless Chromium, driven by Playwright, prints HTML to PDF. The
browser is started once per process and reused. Anything with ``pdf`` and ``close``
(``Printer``) can stand in for it."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PDF_OPTIONS: dict[str, Any] = {
    "format": "Letter",
    "print_background": True,
    "margin": {"top": "0.4in", "bottom": "0.35in", "left": "0.5in", "right": "0.5in"},
}


class Printer(Protocol):
    async def pdf(self, html: str, *, tagged: bool = False) -> bytes: ...

    async def close(self) -> None: ...


class AsyncPrinter:
    """One Chromium for the life of a process (the web app, a worker), started on the first
    PDF asked for. Pages are kept and reused (opening one costs about 250 ms, printing a
    bill on a warm page about 70 ms); several PDFs print side by side on their own pages."""

    KEEP_PAGES = 4

    def __init__(self, chromium: str) -> None:
        self.chromium = chromium
        self._playwright: Any = None
        self._browser: Any = None
        self._lock = asyncio.Lock()
        self._idle: list[Any] = []

    async def _page(self) -> Any:
        async with self._lock:
            if self._browser is None or not self._browser.is_connected():
                from playwright.async_api import async_playwright

                if self._playwright is None:
                    self._playwright = await async_playwright().start()
                self._browser = await self._playwright.chromium.launch(
                    executable_path=self.chromium, args=CHROMIUM_ARGS
                )
                self._idle = []
            if self._idle:
                return self._idle.pop()
        page = await self._browser.new_page()
        # Lay the page out for paper from the start: printing then has no second layout
        # to do, which halves the time a print file takes.
        await page.emulate_media(media="print")
        return page

    async def pdf(self, html: str, *, tagged: bool = False) -> bytes:
        """``tagged``: an accessible PDF (headings, tables and reading order for screen
        readers), for a bill a customer downloads; a mail house's print file needs none."""
        page = await self._page()
        try:
            await page.set_content(html, wait_until="load")
            pdf = await page.pdf(**PDF_OPTIONS, tagged=tagged)
        except Exception:
            await page.close()
            raise
        if len(self._idle) < self.KEEP_PAGES:
            self._idle.append(page)
        else:
            await page.close()
        return pdf

    async def close(self) -> None:
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()
        self._browser = self._playwright = None
        self._idle = []
