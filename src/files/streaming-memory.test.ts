import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import type { Binding } from '../crypto/envelope.ts';
import { BlobStore } from './blob-store.ts';
import { decryptStream, encryptStream } from './stream-cipher.ts';

/**
 * Streaming keeps memory at a few segments whatever the file's size. Each test pushes 50 MB
 * through and samples the process's resident set size while it runs.
 *
 * The margin, 20 MB: buffering the file anywhere would add at least its 50 MB (plaintext or
 * ciphertext, usually both), so a peak growth under 20 MB rules that out, while leaving room for
 * what a streaming run legitimately adds on top of the baseline: V8 growing its heap and
 * young generation, the allocator keeping freed 64 KiB buffers for reuse, stream buffers
 * (highWaterMark) on each stage and OpenSSL contexts. Measured growth on Node 20 is a few MB.
 * This file runs in its own worker process (vitest's default forks pool), so other test
 * files do not disturb the reading.
 */
const TOTAL = 50 * 1024 * 1024;
const CHUNK = 64 * 1024;
const MARGIN = 20 * 1024 * 1024;

const key = randomBytes(32);
const keyId = randomUUID();
const at: Binding = { table: 'documents', column: 'content', row: randomUUID(), version: 1 };

/** A 50 MB source generated on the fly (text, so the sniffer accepts it), hashed as it goes. */
function generated(hash: ReturnType<typeof createHash>, onChunk: () => void): Readable {
  const line = Buffer.from('Synthetic imaging report line, nothing real in it.\n');
  return Readable.from(
    (function* () {
      for (let sent = 0; sent < TOTAL; sent += CHUNK) {
        const chunk = Buffer.alloc(Math.min(CHUNK, TOTAL - sent));
        for (let i = 0; i < chunk.length; i += line.length) {
          line.copy(chunk, i);
        }
        hash.update(chunk);
        onChunk();
        yield chunk;
      }
    })(),
  );
}

function sink(hash: ReturnType<typeof createHash>, onChunk: () => void): Writable & { bytes: number } {
  const w = new Writable({
    write(chunk: Buffer, _e, done) {
      hash.update(chunk);
      w.bytes += chunk.length;
      onChunk();
      done();
    },
  }) as Writable & { bytes: number };
  w.bytes = 0;
  return w;
}

// V8 frees a dead Buffer's memory only when its small JS wrapper is collected, and it starts a
// collection for external memory only after tens of MB of it were allocated (its soft limit is
// 64 MB). Left alone, the RSS of a tight in-memory pipeline therefore climbs by up to that
// much in dead buffers whatever the file's size, and would hide what we measure: memory the
// streams still hold. So the monitor collects garbage before each sample (exposing `gc` at
// run time, as `node --expose-gc` would).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function rssMonitor(): { sample: () => void; growth: () => number } {
  gc();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  let n = 0;
  return {
    sample: () => {
      if (++n % 32 === 0) {
        gc();
        peak = Math.max(peak, process.memoryUsage().rss);
      }
    },
    growth: () => Math.max(peak, process.memoryUsage().rss) - baseline,
  };
}

describe('streaming memory', () => {
  it('encrypts and decrypts 50 MB without RSS growing by anything like the file size', async () => {
    const monitor = rssMonitor();
    const sent = createHash('sha256');
    const received = createHash('sha256');
    const out = sink(received, monitor.sample);
    await pipeline(
      generated(sent, monitor.sample),
      encryptStream(key, keyId, at),
      decryptStream(key, at),
      out,
    );
    expect(out.bytes).toBe(TOTAL);
    expect(received.digest('hex')).toBe(sent.digest('hex'));
    expect(monitor.growth()).toBeLessThan(MARGIN);
  });

  it('writes and reads a 50 MB blob through the store the same way', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'custos-blob-rss-'));
    try {
      const store = await BlobStore.open(path.join(dir, 'blobs'));
      const monitor = rssMonitor();
      const sent = createHash('sha256');
      const stored = await store.write(generated(sent, monitor.sample), {
        key,
        keyId,
        binding: at,
        limit: TOTAL,
      });
      expect(stored.size).toBe(TOTAL);
      expect(stored.sha256).toBe(sent.digest('hex'));
      const received = createHash('sha256');
      const out = sink(received, monitor.sample);
      await pipeline(await store.read(stored.blobId, { key, binding: at, expect: stored }), out);
      expect(received.digest('hex')).toBe(stored.sha256);
      expect(monitor.growth()).toBeLessThan(MARGIN);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  // Last, so the memory it leaves to the allocator cannot mask growth in the tests above.
  it('(control) sees the growth when a stage keeps what passes through', async () => {
    const monitor = rssMonitor();
    const kept: Buffer[] = [];
    const keeper = new Writable({
      write(chunk: Buffer, _e, done) {
        kept.push(chunk);
        monitor.sample();
        done();
      },
    });
    await pipeline(generated(createHash('sha256'), monitor.sample), encryptStream(key, keyId, at), keeper);
    expect(monitor.growth()).toBeGreaterThan(TOTAL * 0.9);
    kept.length = 0;
  });
});
