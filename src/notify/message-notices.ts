import type { Kysely } from 'kysely';
import { type AccessContext, systemContext } from '../access/context.ts';
import type { Chart } from '../chart/gate.ts';
import type { CoreDb } from '../db/schema.ts';
import { isCustosError } from '../errors.ts';
import { MailDeliveryError, type Mailer } from './mailer.ts';
import { newMessageNotice } from './messages.ts';

/**
 * "You have a new message" e-mails: after a staff member's message has committed, the patient is
 * told there is something to read in the portal, and nothing else (src/notify/messages.ts builds
 * the notice from the practice's name and the portal link only: never the subject, the text or
 * who wrote it).
 *
 * - The address is read through the gate by the system actor on behalf of the staff member
 *   (one audit entry, purpose `operations`), only when there is a mailer to send with.
 * - Sending happens after the commit, in the background: the message is stored whatever the mail
 *   does, and a slow relay does not hold up the request. A failure is logged with the thread id,
 *   the request id and a reason code, never an address or content (DESIGN.md invariant 5).
 * - No notice when the patient wrote the message, has no e-mail address, or opted out of the
 *   portal (they could not read it there).
 */
export class MessageNotices {
  readonly #chart: Chart;
  readonly #db: Kysely<CoreDb>;
  readonly #mailer: Mailer | undefined;
  readonly #portalUrl: string;
  readonly #log: (line: string) => void;
  readonly #pending = new Set<Promise<void>>();

  constructor(options: {
    readonly chart: Chart;
    /** For the practice's name (not health data). */
    readonly db: Kysely<CoreDb>;
    /** None: notices are not sent (and no address is read). */
    readonly mailer: Mailer | undefined;
    readonly portalUrl: string;
    readonly log?: (line: string) => void;
  }) {
    this.#chart = options.chart;
    this.#db = options.db;
    this.#mailer = options.mailer;
    this.#portalUrl = options.portalUrl;
    this.#log = options.log ?? (() => undefined);
  }

  /** Where notices go: the relay, the outbox folder, or nowhere. */
  get via(): 'smtp' | 'outbox' | 'none' {
    return this.#mailer?.via ?? 'none';
  }

  /**
   * Call after a message has been stored (committed). Sends the patient a notice in the
   * background when a staff member (or the system) wrote it; returns at once.
   */
  afterPost(ctx: AccessContext, post: { readonly patientId: string; readonly threadId: string }): void {
    const mailer = this.#mailer;
    if (mailer === undefined || ctx.actor.kind === 'patient') {
      return;
    }
    const sending: Promise<void> = this.#send(mailer, ctx, post)
      .catch((e: unknown) => {
        this.#log(
          `message notice for thread ${post.threadId} not sent (${reasonOf(e)}; request ${ctx.requestId})`,
        );
      })
      .finally(() => {
        this.#pending.delete(sending);
      });
    this.#pending.add(sending);
  }

  /** Waits for the notices under way (shutdown, tests). */
  async drain(): Promise<void> {
    while (this.#pending.size > 0) {
      await Promise.allSettled([...this.#pending]);
    }
  }

  async #send(
    mailer: Mailer,
    ctx: AccessContext,
    post: { readonly patientId: string; readonly threadId: string },
  ): Promise<void> {
    const system = systemContext({
      practiceId: ctx.practiceId,
      purpose: 'operations',
      requestId: ctx.requestId,
      ...(ctx.actor.kind === 'user' ? { onBehalfOf: ctx.actor.id } : {}),
    });
    const to = await this.#chart.messageNoticeAddress(system, post.patientId);
    if (to === null) {
      this.#log(
        `message notice for thread ${post.threadId} not sent (no address, or the patient opted out of the portal; request ${ctx.requestId})`,
      );
      return;
    }
    const practice = await this.#db
      .selectFrom('practices')
      .select('name')
      .where('id', '=', ctx.practiceId)
      .executeTakeFirstOrThrow();
    await mailer.send({
      to,
      ...newMessageNotice({ practiceName: practice.name, portalUrl: this.#portalUrl }),
    });
  }
}

/** A reason code for the log: never a message text that could quote an address. */
function reasonOf(e: unknown): string {
  if (e instanceof MailDeliveryError) {
    return `delivery ${e.reason}${e.transient ? ', transient' : ''}`;
  }
  return isCustosError(e) ? e.code : 'internal error';
}
