/** Fixed-size ring of the most recent formatted lines; shared by a logger and all its children. */
export class LineRing {
  private readonly lines: string[] = [];
  private next = 0;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1)
      throw new Error(`ringSize must be a positive integer, got ${size}`);
  }

  push(line: string): void {
    if (this.lines.length < this.size) {
      this.lines.push(line);
    } else {
      this.lines[this.next] = line;
    }
    this.next = (this.next + 1) % this.size;
  }

  /** Oldest first; the last `limit` lines (all kept lines when omitted). */
  recent(limit?: number): string[] {
    const ordered =
      this.lines.length < this.size
        ? this.lines.slice()
        : [...this.lines.slice(this.next), ...this.lines.slice(0, this.next)];
    if (limit === undefined) return ordered;
    if (limit <= 0) return [];
    return ordered.slice(-limit);
  }
}
