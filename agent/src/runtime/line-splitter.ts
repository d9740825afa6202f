/**
 * Turns a byte stream into text lines. A `TextDecoder` in streaming mode keeps a character split
 * across chunks intact; a partial line waits for its newline (or the end of the stream). Lines
 * longer than `maxLineBytes` are cut at a character boundary and marked, and the pending buffer
 * never grows past the cap, so a script printing gigabytes without a newline cannot exhaust memory.
 */
export class LineSplitter {
  private readonly decoder = new TextDecoder("utf-8");
  private pending = "";
  private pendingBytes = 0;
  private droppedBytes = 0;

  constructor(
    private readonly maxLineBytes: number,
    private readonly onLine: (text: string) => void,
  ) {}

  push(chunk: Uint8Array): void {
    this.take(this.decoder.decode(chunk, { stream: true }));
  }

  /** Emits whatever is left (a final line with no newline). */
  end(): void {
    this.take(this.decoder.decode());
    if (this.pending !== "" || this.droppedBytes > 0) this.emit();
  }

  private take(text: string): void {
    let start = 0;
    for (;;) {
      const nl = text.indexOf("\n", start);
      const piece = nl === -1 ? text.slice(start) : text.slice(start, nl);
      this.append(piece);
      if (nl === -1) return;
      this.emit();
      start = nl + 1;
    }
  }

  private append(piece: string): void {
    if (piece === "") return;
    if (this.droppedBytes > 0) {
      this.droppedBytes += Buffer.byteLength(piece);
      return;
    }
    const bytes = Buffer.byteLength(piece);
    if (this.pendingBytes + bytes <= this.maxLineBytes) {
      this.pending += piece;
      this.pendingBytes += bytes;
      return;
    }
    const combined = Buffer.from(this.pending + piece);
    const kept = cutAtCharBoundary(combined, this.maxLineBytes);
    this.pending = kept.toString("utf8");
    this.pendingBytes = kept.length;
    this.droppedBytes = combined.length - kept.length;
  }

  private emit(): void {
    let line = this.pending.endsWith("\r") ? this.pending.slice(0, -1) : this.pending;
    if (this.droppedBytes > 0) {
      const marker = ` …[line cut: ${this.droppedBytes} more bytes]`;
      const room = this.maxLineBytes - Buffer.byteLength(marker);
      line = cutAtCharBoundary(Buffer.from(line), Math.max(0, room)).toString("utf8") + marker;
    }
    this.pending = "";
    this.pendingBytes = 0;
    this.droppedBytes = 0;
    this.onLine(line);
  }
}

/** The longest prefix of `buf` of at most `max` bytes that ends on a UTF-8 character boundary. */
export function cutAtCharBoundary(buf: Buffer, max: number): Buffer {
  if (buf.length <= max) return buf;
  let cut = max;
  // Continuation bytes look like 10xxxxxx; back up to the start of the character they belong to.
  while (cut > 0 && ((buf[cut] ?? 0) & 0xc0) === 0x80) cut--;
  return buf.subarray(0, cut);
}
