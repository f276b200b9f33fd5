/**
 * Lays one call's buffers out in the engine's memory (bump allocation from the heap base, each
 * 64-byte aligned) and grows the memory to fit. Every call starts again from the base, so memory
 * is reused across calls and only grows to the largest call's needs.
 */
import type { EngineExports } from './loader.ts';

const PAGE = 65536;

export class Arena {
  private top: number;

  constructor(private readonly engine: EngineExports) {
    this.top = align(engine.heapBase());
  }

  alloc(bytes: number): number {
    const p = this.top;
    this.top = align(p + bytes);
    return p;
  }

  /** Grow the memory to hold everything allocated; views made before this may be detached. */
  commit(): ArrayBuffer {
    const mem = this.engine.memory;
    const need = Math.ceil(this.top / PAGE) - mem.buffer.byteLength / PAGE;
    if (need > 0) mem.grow(need);
    return mem.buffer;
  }
}

function align(p: number): number {
  return Math.ceil(p / 64) * 64;
}

/** Row stride (bytes) of an n-point complex buffer: 2n f64 plus one cache line, so that a column's rows spread over the cache sets. */
export function rowStride(n: number): number {
  return (2 * n + 8) * 8;
}
