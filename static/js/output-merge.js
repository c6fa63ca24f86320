// A run's output shown on a page: the stored output first, then the live chunks, each
// placed by its offset (in characters, as the server counts them: code points) so nothing
// shows twice and a gap (chunks printed before the page listened, not stored yet) is seen.
export class OutputView {
  constructor(node, shown, onGap) {
    this.node = node;
    this.shown = shown;           // characters of the output the node holds
    this.waiting = new Map();     // offset -> text, chunks past what is shown
    this.onGap = onGap;
  }

  // Place text that starts at `offset`; false when it starts past what is shown.
  extend(offset, text) {
    if (offset > this.shown) return false;
    const chars = Array.from(text);
    if (offset + chars.length > this.shown) {
      const node = this.node;
      const following = node.scrollTop + node.clientHeight >= node.scrollHeight - 4;
      node.textContent += chars.slice(this.shown - offset).join("");
      this.shown = offset + chars.length;
      if (following) node.scrollTop = node.scrollHeight;  // keep the newest line in view
    }
    return true;
  }

  // A chunk from the websocket, or the whole output so far (offset 0) from the server.
  add(offset, text) {
    if (!this.extend(offset, text)) this.waiting.set(offset, text);
    let placed = true;
    while (placed && this.waiting.size) {
      placed = false;
      for (const [at, chunk] of this.waiting) {
        if (this.extend(at, chunk)) { this.waiting.delete(at); placed = true; }
      }
    }
    if (this.waiting.size) this.onGap();
  }
}
