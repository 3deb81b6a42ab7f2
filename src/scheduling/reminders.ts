import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { type AccessContext, systemContext } from '../access/context.ts';
import type { Chart } from '../chart/gate.ts';
import type { CoreDb } from '../db/schema.ts';
import type { Mailer } from '../notify/mailer.ts';
import { appointmentReminder } from '../notify/messages.ts';
import { schedulingSettings } from './settings.ts';

/**
 * Appointment reminders (issue 6 item 6): a job that finds booked appointments starting within
 * the lead time (the practice's `reminderLeadHours`, default 24) whose reminder has not gone out,
 * and e-mails each patient a reminder that says only what the minimum-necessary standard allows:
 * the practice's name, the date and time (in the practice's zone) and a link to the portal, with
 * an .ics carrying the same (`appointmentReminder` in src/notify/messages.ts builds both and
 * nothing else can be mailed). Never the clinician, the room, the reason or the patient's name.
 *
 * Everything it reads comes through the gate as the system actor with purpose `operations`: the
 * due list (ids only), then per appointment a claim that reads the patient's e-mail address and
 * marks `reminder_sent_at` in the transaction of its audit entry.
 *
 * Once, not twice: the claim commits before the message leaves (claim, then send). Two servers
 * never both send a reminder (the claim locks the row and skips locked ones), and a second run
 * finds nothing to send. A send that fails where the job sees it (relay unreachable, refused)
 * gives the claim back and the next run tries again. What remains is a crash in the instant
 * between the claim's commit and the relay's acceptance: that reminder is lost, not doubled.
 * We chose that over send-then-mark, which holds a database transaction (and with the embedded
 * database, the only connection) open across an SMTP conversation of up to a minute, and which
 * after the same crash sends a second copy: a missed courtesy reminder is the smaller harm than
 * stalling the clinic's database, and no worse than a reminder lost in the post.
 */

/** The gate calls the job uses (a Chart). */
export type ReminderGate = Pick<Chart, 'dueReminders' | 'claimReminder' | 'releaseReminder'>;

export interface ReminderJob {
  readonly chart: ReminderGate;
  /** The application database handle (practice name and scheduling settings only). */
  readonly db: Kysely<CoreDb>;
  readonly practiceId: string;
  readonly mailer: Mailer;
  /** The patient portal's address: the only link a reminder carries. */
  readonly portalUrl: string;
  /** The only thing tests fake. */
  readonly clock: () => Date;
  /** Overrides the practice's lead time (milliseconds before the start a reminder is due). */
  readonly leadMs?: number;
  /** How many reminders one run sends at most (default 500; the next run continues). */
  readonly batch?: number;
  /** One line per run that did something, and per failure (no address, no content). */
  readonly log?: (line: string) => void;
}

export interface ReminderRun {
  /** Appointments due a reminder when the run started. */
  readonly due: number;
  readonly sent: number;
  /** Claimed but not sent: the patient has no e-mail address (marked; not tried again). */
  readonly skipped: number;
  /** Sending failed; the claim was given back and the next run tries again. */
  readonly failed: number;
}

const context = (practiceId: string): AccessContext =>
  systemContext({ practiceId, purpose: 'operations', requestId: `reminders-${randomUUID()}` });

/**
 * One run of the reminder job at `clock()`.
 * @example
 *   await runReminders({ chart, db, practiceId, mailer: createMailer(config), portalUrl, clock });
 */
export async function runReminders(job: ReminderJob): Promise<ReminderRun> {
  const now = job.clock();
  const settings = await schedulingSettings(job.db, job.practiceId);
  const leadMs = job.leadMs ?? settings.reminderLeadHours * 3_600_000;
  const due = await job.chart.dueReminders(context(job.practiceId), {
    now,
    leadMs,
    limit: job.batch ?? 500,
  });
  let sent = 0;
  let skipped = 0;
  let failed = 0;
  for (const id of due) {
    const ctx = context(job.practiceId);
    let claim: Awaited<ReturnType<ReminderGate['claimReminder']>>;
    try {
      claim = await job.chart.claimReminder(ctx, id, { now, leadMs });
    } catch (e) {
      // Audited by the gate (an error entry); the appointment stays due for the next run.
      failed++;
      job.log?.(`custos: a reminder could not be prepared (${(e as Error).name})`);
      continue;
    }
    if (claim === null) {
      continue;
    }
    if (claim.email === null) {
      skipped++;
      continue;
    }
    try {
      const message = appointmentReminder(
        {
          practiceName: settings.practiceName,
          startsAt: claim.start,
          endsAt: claim.end,
          timeZone: settings.timeZone,
          portalUrl: job.portalUrl,
          appointmentRef: claim.appointmentId,
        },
        { now },
      );
      await job.mailer.send({ to: claim.email, ...message });
      sent++;
    } catch (e) {
      failed++;
      job.log?.(`custos: a reminder was not sent (${(e as Error).name}); it is tried again on the next run`);
      await job.chart.releaseReminder(ctx, id);
    }
  }
  if (due.length > 0) {
    job.log?.(`custos: reminders: ${sent} sent, ${skipped} without an e-mail address, ${failed} failed`);
  }
  return { due: due.length, sent, skipped, failed };
}

/**
 * Runs the job now and then every `intervalMs` (default 5 minutes) until stopped; runs never
 * overlap. For `custos serve`.
 */
export function startReminders(job: ReminderJob & { readonly intervalMs?: number }): {
  stop(): Promise<void>;
} {
  let running: Promise<unknown> = Promise.resolve();
  const round = async () => {
    try {
      await runReminders(job);
    } catch (e) {
      job.log?.(`custos: the reminder run failed (${(e as Error).name}); it runs again shortly`);
    }
  };
  const tick = () => {
    running = running.then(round);
  };
  tick();
  const timer = setInterval(tick, job.intervalMs ?? 300_000);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
