"""A one-line progress bar on stderr (no third-party dependency)."""
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

    def step(self, label: str) -> None:
        self.done += 1
        self._draw(label)

    def show(self, label: str) -> None:
        """Redraw without advancing: tells what is running now (a compile can take a while)."""
        self._draw(label)

    def _draw(self, label: str) -> None:
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        text = f"[{bar}] {self.done}/{self.total} {time.perf_counter() - self.start:5.0f}s {label}"[:110]
        # pad over the previous line's tail, since \r does not clear it
        self.stream.write("\r" + text + " " * max(0, self._last_len - len(text)))
        self.stream.flush()
        self._last_len = len(text)

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
