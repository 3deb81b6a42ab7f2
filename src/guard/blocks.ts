import type { Kysely } from 'kysely';
import type { CoreDb } from '../db/schema.ts';

/**
 * Address blocks and the strikes that lead to them, kept in the database so that every server
 * behind a load balancer enforces the same blocks. Blocks expire by themselves.
 */
export class Blocks {
  readonly #db: Kysely<CoreDb>;
  readonly #clock: () => Date;

  constructor(options: { db: Kysely<CoreDb>; clock: () => Date }) {
    this.#db = options.db;
    this.#clock = options.clock;
  }

  async isBlocked(address: string): Promise<boolean> {
    const row = await this.#db
      .selectFrom('ip_blocks')
      .select('address')
      .where('address', '=', address)
      .where('lifted_at', 'is', null)
      .where('blocked_until', '>', this.#clock())
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  async block(address: string, reason: string, forMs: number): Promise<void> {
    const now = this.#clock();
    await this.#db
      .insertInto('ip_blocks')
      .values({
        address,
        reason,
        blocked_at: now,
        blocked_until: new Date(now.getTime() + forMs),
        lifted_at: null,
        lifted_by: null,
      })
      .execute();
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
