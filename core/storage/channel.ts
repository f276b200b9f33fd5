/**
 * A hand-off queue between a producer that calls write() and a consumer that iterates (a
 * Storage.putStream). write() settles when the consumer has taken the chunk, so the producer
 * never runs ahead of the upload by more than what the consumer itself holds; no copy is made.
 */
export class ChunkChannel implements AsyncIterable<Uint8Array> {
  private queue: { chunk: Uint8Array; taken: () => void; refused: (e: unknown) => void }[] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  /** Set by fail(): the consumer's iteration throws it. */
  private failure: { error: unknown } | undefined;
  /** Set by close(): the consumer is gone, so writes can no longer be delivered. */
  private closed: { error: unknown } | undefined;

  write(chunk: Uint8Array): Promise<void> {
    if (this.closed) return Promise.reject(this.closed.error);
    if (this.ended || this.failure) return Promise.reject(new Error('write after end of stream'));
    return new Promise<void>((taken, refused) => {
      this.queue.push({ chunk, taken, refused });
      this.poke();
    });
  }

  /** No more chunks: the consumer's iteration ends normally. */
  end(): void {
    this.ended = true;
    this.poke();
  }

  /** Abandon the stream: the consumer's iteration throws `error` (and so discards its work). */
  fail(error: unknown): void {
    if (!this.failure) this.failure = { error };
    this.poke();
  }

  /** The consumer has stopped (finished or failed): refuse queued and future writes with `error`. */
  close(error: unknown): void {
    if (!this.closed) this.closed = { error };
    for (const q of this.queue.splice(0)) q.refused(error);
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      if (this.failure) throw this.failure.error;
      const next = this.queue.shift();
      if (next) {
        next.taken();
        yield next.chunk;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((r) => (this.wake = r));
    }
  }
}
