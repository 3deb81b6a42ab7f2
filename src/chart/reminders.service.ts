import type { AccessContext } from '../access/context.ts';
import { isUuid } from '../ids.ts';
import * as store from './chart.store.ts';
import { Denied, type GateCore, openPatient } from './gate-core.ts';

/**
 * The gate's part of appointment reminders (src/scheduling/reminders.ts runs the job): which
 * booked appointments are due a reminder, and, per appointment, claiming it and reading the one
 * thing a reminder needs from the chart, the patient's e-mail address. The system actor only,
 * each call audited (purpose: the context's, operations for the job).
 *
 * Claim, then send (at most once): `claimReminder` marks `reminder_sent_at` in the transaction of
 * its audit entry, before the message leaves, so two servers never both send one and a crash
 * after the claim loses that reminder rather than sending it twice. A failure the job sees
 * (relay down) gives the claim back (`releaseReminder`), and the next run tries again.
 */

function systemOnly(ctx: AccessContext): void {
  if (ctx.actor.kind !== 'system') {
    throw new Denied('actor-kind');
  }
}

/** Booked appointments starting in (now, now + lead] whose reminder has not gone out: ids only. */
export async function dueReminders(
  g: GateCore,
  ctx: AccessContext,
  q: { now: Date; leadMs: number; limit?: number },
): Promise<string[]> {
  return g.call(ctx, { action: 'list', resourceType: 'appointment' }, async (tx, t) => {
    systemOnly(ctx);
    const rows = await tx
      .selectFrom('appointments')
      .select('id')
      .where('practice_id', '=', ctx.practiceId)
      .where('status', '=', 'booked')
      .where('reminder_sent_at', 'is', null)
      .where('starts_at', '>', q.now)
      .where('starts_at', '<=', new Date(q.now.getTime() + q.leadMs))
      .orderBy('starts_at')
      .limit(q.limit ?? 500)
      .execute();
    t.detail = { ...(t.detail ?? {}), count: rows.length, reminders: true };
    return () => rows.map((r) => r.id);
  });
}

export interface ReminderClaim {
  readonly appointmentId: string;
  readonly start: Date;
  readonly end: Date;
  /** Null when the patient has no e-mail address (the reminder is then skipped, and marked). */
  readonly email: string | null;
}

/**
 * Claims one due reminder (marks it sent) and reads the patient's e-mail address; null when it
 * is no longer due (sent, rescheduled, cancelled, or claimed by another server right now).
 */
export async function claimReminder(
  g: GateCore,
  ctx: AccessContext,
  appointmentId: string,
  q: { now: Date; leadMs: number },
): Promise<ReminderClaim | null> {
  return g.call(
    ctx,
    { action: 'notify', resourceType: 'appointment', resourceId: appointmentId },
    async (tx, t, keys) => {
      systemOnly(ctx);
      if (!isUuid(appointmentId)) {
        throw new Denied('not-found');
      }
      const row = await tx
        .selectFrom('appointments')
        .select(['id', 'pseudonym', 'starts_at', 'ends_at'])
        .where('practice_id', '=', ctx.practiceId)
        .where('id', '=', appointmentId)
        .where('status', '=', 'booked')
        .where('reminder_sent_at', 'is', null)
        .where('starts_at', '>', q.now)
        .where('starts_at', '<=', new Date(q.now.getTime() + q.leadMs))
        .forUpdate()
        .skipLocked()
        .executeTakeFirst();
      if (!row) {
        t.detail = { ...(t.detail ?? {}), claimed: false };
        return () => null;
      }
      t.patientPseudonym = row.pseudonym;
      const patientId = await store.patientIdForPseudonymIndex(
        tx,
        ctx.practiceId,
        g.keyring.pseudonymIndex(row.pseudonym),
      );
      if (!patientId) {
        throw new Denied('not-found');
      }
      await g.patientFacts(tx, ctx, t, patientId, 'read', { kind: 'section', section: 'contact' });
      const [head] = await store.loadPatientHeads(tx, {
        practiceId: ctx.practiceId,
        patientIds: [patientId],
        actorId: ctx.actor.id,
        now: q.now,
      });
      if (!head) {
        throw new Denied('not-found');
      }
      await tx
        .updateTable('appointments')
        .set({ reminder_sent_at: q.now })
        .where('id', '=', row.id)
        .execute();
      // A deactivated patient (deceased, moved away, merged) gets no reminder: claimed, not sent.
      t.detail = { ...(t.detail ?? {}), claimed: true, ...(head.active ? {} : { inactive: true }) };
      return () => ({
        appointmentId: row.id,
        start: row.starts_at,
        end: row.ends_at,
        // Only the address leaves this function: the reminder names no one (minimum necessary).
        email: head.active ? (openPatient(keys, head).identity.email ?? null) : null,
      });
    },
  );
}

/** Gives a claim back after a failed send, so that the next run tries again. */
export async function releaseReminder(g: GateCore, ctx: AccessContext, appointmentId: string): Promise<void> {
  return g.call(
    ctx,
    { action: 'update', resourceType: 'appointment', resourceId: appointmentId },
    async (tx, t) => {
      systemOnly(ctx);
      if (!isUuid(appointmentId)) {
        throw new Denied('not-found');
      }
      const row = await tx
        .updateTable('appointments')
        .set({ reminder_sent_at: null })
        .where('practice_id', '=', ctx.practiceId)
        .where('id', '=', appointmentId)
        .returning('pseudonym')
        .executeTakeFirst();
      if (!row) {
        throw new Denied('not-found');
      }
      t.patientPseudonym = row.pseudonym;
      t.detail = { ...(t.detail ?? {}), reminder: 'released' };
      return () => undefined;
    },
  );
}
