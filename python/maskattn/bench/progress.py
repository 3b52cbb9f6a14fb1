"""Progress on stderr (no third-party dependency): a bar redrawn in place on a terminal, one plain
line per finished step anywhere else (files and CI logs keep no carriage returns)."""
import sys
import time


class Progress:
    def __init__(self, total: int, stream=None, width: int = 24):
        self.total = max(total, 1)
        self.done = 0
        self.width = width
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.perf_counter()
        self._last_len = 0
        isatty = getattr(self.stream, "isatty", None)
        self.redraw = bool(isatty and isatty())

    def step(self, label: str) -> None:
        self.done += 1
        if self.redraw:
            self._draw(label)
        else:
            self._write(f"[{self.done}/{self.total}] {self._elapsed()} {label}\n")

    def show(self, label: str) -> None:
        """Tells what is running now (a compile can take a while); on a terminal only."""
        if self.redraw:
            self._draw(label)

    def _elapsed(self) -> str:
        return f"{time.perf_counter() - self.start:5.0f}s"

    def _draw(self, label: str) -> None:
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        text = f"[{bar}] {self.done}/{self.total} {self._elapsed()} {label}"[:110]
        # pad over the previous line's tail, since \r does not clear it
        self._write("\r" + text + " " * max(0, self._last_len - len(text)))
        self._last_len = len(text)

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.redraw:
            self._write("\n")
