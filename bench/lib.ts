import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

/** Benchmarks create and drop their own PostgreSQL database on this server. */
export const SERVER_URL =
  process.env.CUSTOS_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export async function createDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `custos_bench_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: SERVER_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(SERVER_URL);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: SERVER_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export const tempDir = (prefix: string) => fs.mkdtempSync(path.join(os.tmpdir(), prefix));
export const keyFileIn = (dir: string) => path.join(dir, 'custos.keys');

/** Prints one JSON object per line (the `npm run bench` contract). */
export function report(result: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) {
    return Number.NaN;
  }
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

export const round = (x: number, digits = 2) => Number(x.toFixed(digits));

/**
 * Runs `op` from `concurrency` callers for `durationMs` (after a warm-up), and returns the
 * throughput and latency percentiles in milliseconds.
 */
export async function closedLoop(
  op: () => Promise<unknown>,
  options: { concurrency: number; durationMs: number; warmupMs?: number },
) {
  const warmEnd = performance.now() + (options.warmupMs ?? 1000);
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (performance.now() < warmEnd) {
        await op();
      }
    }),
  );
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + options.durationMs;
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await op();
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    ops: latencies.length,
    opsPerSec: round(latencies.length / elapsed, 1),
    p50ms: round(percentile(latencies, 50), 3),
    p99ms: round(percentile(latencies, 99), 3),
  };
}

/** Peak resident set size while `fn` runs, sampled every 50 ms, in MiB. */
export async function withPeakRss<T>(fn: () => Promise<T>): Promise<{ result: T; peakRssMiB: number }> {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 50);
  try {
    const result = await fn();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, peakRssMiB: round(peak / 2 ** 20, 1) };
  } finally {
    clearInterval(timer);
  }
}
