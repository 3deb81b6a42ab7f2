import type { Kysely } from 'kysely';
import type { CoreDb } from '../db/schema.ts';

/**
 * Address blocks and the strikes that lead to them, kept in the database so that every server
 * behind a load balancer enforces the same blocks. Blocks expire by themselves.
 */
export class Blocks {
  readonly #db: Kysely<CoreDb>;
  readonly #clock: () => Date;
  readonly #refreshMs: number;
  /** Active blocks (address -> until, ms), reloaded from the database at most every `refreshMs`. */
  #cache = new Map<string, number>();
  #loadedAt = Number.NEGATIVE_INFINITY;
  #loading: Promise<void> | undefined;

  /**
   * `refreshMs`: how stale this server's view of other servers' blocks may be. A refused request
   * then costs no database query at all, which keeps a flood from a blocked address cheap.
   * Blocks and lifts made through this instance take effect here at once.
   */
  constructor(options: { db: Kysely<CoreDb>; clock: () => Date; refreshMs?: number }) {
    this.#db = options.db;
    this.#clock = options.clock;
    this.#refreshMs = options.refreshMs ?? 1000;
  }

  async isBlocked(address: string): Promise<boolean> {
    if (performance.now() - this.#loadedAt >= this.#refreshMs) {
      this.#loading ??= this.#reload().finally(() => {
        this.#loading = undefined;
      });
      await this.#loading;
    }
    const until = this.#cache.get(address);
    return until !== undefined && until > this.#clock().getTime();
  }

  async #reload(): Promise<void> {
    const rows = await this.#db
      .selectFrom('ip_blocks')
      .select(['address', 'blocked_until'])
      .where('lifted_at', 'is', null)
      .where('blocked_until', '>', this.#clock())
      .execute();
    const next = new Map<string, number>();
    for (const r of rows) {
      next.set(r.address, Math.max(next.get(r.address) ?? 0, r.blocked_until.getTime()));
    }
    this.#cache = next;
    this.#loadedAt = performance.now();
  }

  async block(address: string, reason: string, forMs: number): Promise<void> {
    const now = this.#clock();
    const until = new Date(now.getTime() + forMs);
    await this.#db
      .insertInto('ip_blocks')
      .values({ address, reason, blocked_at: now, blocked_until: until, lifted_at: null, lifted_by: null })
      .execute();
    this.#cache.set(address, until.getTime());
  }

  /** Lifts every active block of an address; returns how many there were. */
  async lift(address: string, by: string): Promise<number> {
    const now = this.#clock();
    const r = await this.#db
      .updateTable('ip_blocks')
      .set({ lifted_at: now, lifted_by: by })
      .where('address', '=', address)
      .where('lifted_at', 'is', null)
      .where('blocked_until', '>', now)
      .executeTakeFirst();
    this.#cache.delete(address);
    return Number(r.numUpdatedRows);
  }

  async active(): Promise<{ address: string; reason: string; blockedAt: Date; blockedUntil: Date }[]> {
    const rows = await this.#db
      .selectFrom('ip_blocks')
      .select(['address', 'reason', 'blocked_at', 'blocked_until'])
      .where('lifted_at', 'is', null)
      .where('blocked_until', '>', this.#clock())
      .orderBy('blocked_at')
      .execute();
    return rows.map((r) => ({
      address: r.address,
      reason: r.reason,
      blockedAt: r.blocked_at,
      blockedUntil: r.blocked_until,
    }));
  }

  /** Records a strike (`login-failed`, `login-attempt`, `injection`) against an address. */
  async strike(address: string, kind: string, subjectHash: string | null = null): Promise<void> {
    await this.#db
      .insertInto('guard_events')
      .values({ address, kind, subject_hash: subjectHash, at: this.#clock() })
      .execute();
  }

  /** Strikes of a kind from an address within the window: the count and distinct subjects. */
  async strikes(
    address: string,
    kind: string,
    windowMs: number,
  ): Promise<{ count: number; subjects: number }> {
    const since = new Date(this.#clock().getTime() - windowMs);
    const row = await this.#db
      .selectFrom('guard_events')
      .select((eb) => [
        eb.fn.countAll<string>().as('n'),
        eb.fn.count<string>('subject_hash').distinct().as('s'),
      ])
      .where('address', '=', address)
      .where('kind', '=', kind)
      .where('at', '>', since)
      .executeTakeFirstOrThrow();
    return { count: Number(row.n), subjects: Number(row.s) };
  }
}
