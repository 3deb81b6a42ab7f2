import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestCustos, skipReason, type TestCustos } from '../../test/support/db.ts';
import { condition, identity, note, staffRow, system, user } from '../../test/support/fixtures.ts';
import type { AccessContext } from '../access/context.ts';
import { anomalyReport } from '../audit/anomalies.ts';
import { isCustosError } from '../errors.ts';

const skip = skipReason();
if (skip) {
  console.warn(`[custos] access.int.test.ts skipped: ${skip}`);
}

/**
 * The real policy through the real gate on both engines: minimum necessary views, sensitive
 * records, care teams with dates, consent taking effect on the next request, restricted
 * patients and the break-the-glass lifecycle, with a fake clock.
 */
describe.skipIf(skip)('access control through the gate', () => {
  let c: TestCustos;
  let now = new Date('2026-03-02T09:00:00Z');
  const advance = (ms: number) => {
    now = new Date(now.getTime() + ms);
  };
  const staff: Record<string, AccessContext> = {};
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    c = await openTestCustos({ clock: () => now });
    const roles: Record<string, string> = {
      therapist: 'clinician',
      colleague: 'clinician',
      outsider: 'clinician',
      nurse: 'nurse',
      desk: 'frontdesk',
      billing: 'billing',
      admin: 'admin',
      officer: 'privacy_officer',
    };
    for (const [name, role] of Object.entries(roles)) {
      const id = await staffRow(c.database.db, c.practiceId, name, [role], now);
      ids[name] = id;
      staff[name] = user(c.practiceId, id, role);
    }
  });
  afterAll(async () => {
    await c?.cleanup();
  });

  const entries = async (since: string) =>
    c.database.db.selectFrom('audit_entries').selectAll().where('seq', '>', since).orderBy('seq').execute();
  const lastSeq = async () =>
    String(
      (
        await c.database.db
          .selectFrom('audit_entries')
          .select((eb) => eb.fn.max('seq').as('m'))
          .executeTakeFirst()
      )?.m ?? '0',
    );
  const denied = async (p: Promise<unknown>) => {
    const e = await p.then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(isCustosError(e, 'CUSTOS_ERR_NOT_FOUND')).toBe(true);
  };

  /** A patient with the therapist and the nurse on the care team and one record of each sensitivity. */
  async function patientWithRecords() {
    const { id } = await c.chart.createPatient(system(c.practiceId), identity(), {
      careTeam: [ids.therapist!, ids.nurse!, ids.colleague!],
    });
    const t = staff.therapist!;
    const normal = await c.chart.createRecord(t, id, condition());
    const restricted = await c.chart.createRecord(t, id, {
      ...note('Restricted synthetic note.'),
      sensitivity: 'restricted',
    });
    const psy = await c.chart.createRecord(t, id, {
      ...note('Psychotherapy synthetic note.'),
      sensitivity: 'psychotherapy',
    });
    return { id, normal: normal.id, restricted: restricted.id, psy: psy.id };
  }

  it('gives each role its minimum necessary view of the chart, fields absent rather than masked', async () => {
    const p = await patientWithRecords();
    const seen = async (who: string) => {
      const r = await c.chart.readChart(staff[who]!, p.id);
      return { identity: Object.keys(r.patient.identity).sort(), records: r.records.map((x) => x.id).sort() };
    };
    const allIdentity = ['address', 'birthDate', 'email', 'identifiers', 'name', 'phone', 'sex'];
    expect(await seen('therapist')).toEqual({
      identity: allIdentity,
      records: [p.normal, p.restricted, p.psy].sort(),
    });
    // The colleague is on the team but is neither the author of nor shared on the psychotherapy note.
    expect(await seen('colleague')).toEqual({
      identity: allIdentity,
      records: [p.normal, p.restricted].sort(),
    });
    expect(await seen('nurse')).toEqual({ identity: allIdentity, records: [p.normal] });
    expect(await seen('desk')).toEqual({ identity: allIdentity, records: [] });
    expect(await seen('billing')).toEqual({
      identity: ['address', 'birthDate', 'identifiers', 'name', 'sex'],
      records: [p.normal],
    });
    const b = await c.chart.readChart(staff.billing!, p.id);
    expect(b.records[0]?.body).toEqual({
      code: { system: 'http://hl7.org/fhir/sid/icd-10', code: 'J45.909', display: 'Asthma' },
      clinicalStatus: 'active',
      onset: '2020-03-01',
    });
    for (const who of ['admin', 'officer', 'outsider']) {
      await denied(c.chart.readChart(staff[who]!, p.id));
      await denied(c.chart.readRecord(staff[who]!, p.normal));
    }
    await denied(c.chart.readRecord(staff.colleague!, p.psy));
    await denied(c.chart.readRecord(staff.nurse!, p.restricted));
    await denied(c.chart.readRecord(staff.desk!, p.normal));
  });

  it('shows a psychotherapy note to a colleague only once the author shares it, and never exports it', async () => {
    const p = await patientWithRecords();
    await denied(c.chart.readRecord(staff.colleague!, p.psy));
    await denied(c.chart.shareRecord(staff.colleague!, p.psy, ids.nurse!));
    await c.chart.shareRecord(staff.therapist!, p.psy, ids.colleague!);
    const before = await lastSeq();
    expect((await c.chart.readRecord(staff.colleague!, p.psy)).id).toBe(p.psy);
    // Reading a colleague's psychotherapy note is marked for the anomaly report.
    const [read] = await entries(before);
    expect(read?.detail).toEqual({ sensitivity: 'psychotherapy' });
    expect(
      (await anomalyReport(c.database.db, { practiceId: c.practiceId })).some(
        (a) => a.seqs[0] === String(read?.seq),
      ),
    ).toBe(true);
    // Sharing is read-only: the colleague still cannot change it.
    await denied(
      c.chart.updateRecord(staff.colleague!, p.psy, {
        expectedVersion: 1,
        body: { body: 'x', date: '2026-01-02T10:00:00Z' },
      }),
    );
    const exported = await c.chart.exportChart(staff.therapist!, p.id);
    expect(exported.records.map((r) => r.id).sort()).toEqual([p.normal, p.restricted].sort());
    const sysExport = await c.chart.exportChart(system(c.practiceId), p.id);
    expect(sysExport.records.map((r) => r.id)).not.toContain(p.psy);
    await c.chart.shareRecord(staff.therapist!, p.psy, ids.colleague!, false);
    await denied(c.chart.readRecord(staff.colleague!, p.psy));
  });

  it('lets front desk and billing search the practice, clinicians their care team, and counts only what may be seen', async () => {
    const family = `Searchable${randomUUID().slice(0, 6)}`;
    const mine = await c.chart.createPatient(
      system(c.practiceId),
      identity({ name: { given: ['A'], family } }),
      { careTeam: [ids.therapist!] },
    );
    const other = await c.chart.createPatient(
      system(c.practiceId),
      identity({ name: { given: ['B'], family } }),
    );
    const vip = await c.chart.createPatient(
      system(c.practiceId),
      identity({ name: { given: ['C'], family } }),
      { restricted: true },
    );
    const found = async (who: string) =>
      (await c.chart.searchPatients(staff[who]!, { family })).map((x) => x.id).sort();
    expect(await found('therapist')).toEqual([mine.id]);
    expect(await found('desk')).toEqual([mine.id, other.id].sort());
    expect(await found('billing')).toEqual([mine.id, other.id].sort());
    expect(await found('outsider')).toEqual([]);
    await denied(c.chart.searchPatients(staff.admin!, { family }));
    await denied(c.chart.searchPatients(staff.officer!, { family }));
    const before = await lastSeq();
    await c.chart.searchPatients(staff.desk!, { family });
    const [entry] = await entries(before);
    expect(entry?.detail).toMatchObject({ count: 2 });
    // Billing's results carry billing's fields only.
    const b = await c.chart.searchPatients(staff.billing!, { family });
    expect(Object.keys(b[0]!.identity).sort()).toEqual([
      'address',
      'birthDate',
      'identifiers',
      'name',
      'sex',
    ]);
    // The restricted patient appears for front desk once on its care team, flagged in the entry.
    await c.chart.addCareTeamMember(system(c.practiceId), vip.id, ids.desk!);
    expect(await found('desk')).toEqual([mine.id, other.id, vip.id].sort());
    const s2 = await lastSeq();
    await c.chart.readPatient(staff.desk!, vip.id);
    const [vipRead] = await entries(s2);
    expect(vipRead?.detail).toEqual({ restrictedPatient: true });
  });

  it('keeps care-team membership to its dates and audits every change', async () => {
    const { id } = await c.chart.createPatient(staff.desk!, identity());
    // Front desk at intake adds the therapist from tomorrow.
    const start = new Date(now.getTime() + 24 * 3600_000);
    const before = await lastSeq();
    await c.chart.addCareTeamMember(staff.desk!, id, ids.therapist!, { startsAt: start });
    const [added] = await entries(before);
    expect(added).toMatchObject({ action: 'care-team', outcome: 'success', actor_id: ids.desk });
    expect(added?.detail).toMatchObject({
      change: 'added',
      userId: ids.therapist,
      startsAt: start.toISOString(),
    });
    await denied(c.chart.readChart(staff.therapist!, id));
    advance(24 * 3600_000);
    expect((await c.chart.readChart(staff.therapist!, id)).patient.id).toBe(id);
    // The therapist, now on the team, adds a colleague; the nurse may not manage the team.
    await c.chart.addCareTeamMember(staff.therapist!, id, ids.colleague!);
    await denied(c.chart.addCareTeamMember(staff.nurse!, id, ids.nurse!));
    await denied(c.chart.addCareTeamMember(staff.outsider!, id, ids.outsider!));
    const team = await c.chart.listCareTeam(staff.therapist!, id);
    expect(
      team
        .filter((m) => m.current)
        .map((m) => m.username)
        .sort(),
    ).toEqual(['colleague', 'therapist']);
    await c.chart.endCareTeamMember(staff.therapist!, id, ids.colleague!);
    await denied(c.chart.readChart(staff.colleague!, id));
    const after = await c.chart.listCareTeam(staff.desk!, id);
    expect(after.find((m) => m.username === 'colleague')).toMatchObject({
      current: false,
      endedBy: ids.therapist,
    });
    // The privacy officer sees who is on the team; front desk lists no records (no clinical grant).
    expect((await c.chart.listCareTeam(staff.officer!, id)).length).toBe(2);
    await denied(c.chart.listRecords(staff.desk!, id));
    // Registering with other members needs the care-team grant; restricted needs the flag grant.
    await denied(c.chart.createPatient(staff.nurse!, identity(), { careTeam: [ids.colleague!] }));
    await denied(c.chart.createPatient(staff.desk!, identity(), { restricted: true }));
    const own = await c.chart.createPatient(staff.nurse!, identity());
    expect((await c.chart.listCareTeam(staff.nurse!, own.id)).map((m) => m.username)).toEqual(['nurse']);
    // Bad input names the field and changes nothing.
    const bad = await c.chart.addCareTeamMember(staff.desk!, id, 'not-a-user').catch((e: unknown) => e);
    expect(isCustosError(bad, 'CUSTOS_ERR_VALIDATION') && bad.field).toBe('userId');
  });

  it('applies consent changes on the next request', async () => {
    const p = await patientWithRecords();
    const mh = await c.chart.createRecord(staff.colleague!, p.id, {
      kind: 'condition',
      body: { code: { system: 'http://hl7.org/fhir/sid/icd-10', code: 'F32.1' }, clinicalStatus: 'active' },
    });
    expect((await c.chart.readRecord(staff.therapist!, mh.id)).id).toBe(mh.id);
    const v1 = await c.chart.setConsent(staff.desk!, p.id, 0, { withholdCategories: ['mental-health'] });
    expect(v1).toEqual({ version: 1 });
    // Withheld from everyone but its author.
    await denied(c.chart.readRecord(staff.therapist!, mh.id));
    expect((await c.chart.readRecord(staff.colleague!, mh.id)).id).toBe(mh.id);
    const chart = await c.chart.readChart(staff.therapist!, p.id);
    expect(chart.records.map((r) => r.id)).not.toContain(mh.id);
    // Deny the nurse role; a stale version conflicts and changes nothing.
    const stale = await c.chart
      .setConsent(staff.desk!, p.id, 0, { denyRoles: ['nurse'] })
      .catch((e: unknown) => e);
    expect(isCustosError(stale, 'CUSTOS_ERR_VERSION_CONFLICT')).toBe(true);
    expect((await c.chart.readChart(staff.nurse!, p.id)).patient.id).toBe(p.id);
    await c.chart.setConsent(staff.desk!, p.id, 1, {
      denyRoles: ['nurse'],
      withholdCategories: ['mental-health'],
    });
    await denied(c.chart.readChart(staff.nurse!, p.id));
    expect(await c.chart.readConsent(staff.officer!, p.id)).toMatchObject({
      version: 2,
      directives: {
        denyRoles: ['nurse'],
        withholdCategories: ['mental-health'],
        denyUsers: [],
        portalOptOut: false,
      },
    });
    await denied(c.chart.readConsent(staff.billing!, p.id));
    const bad = await c.chart
      .setConsent(staff.desk!, p.id, 2, { denyRoles: ['janitor'] })
      .catch((e: unknown) => e);
    expect(isCustosError(bad, 'CUSTOS_ERR_VALIDATION') && bad.field).toBe('consent.denyRoles.0');
    // The consent is stored sealed, its entry says only that it changed.
    const row = await c.database.db
      .selectFrom('audit_entries')
      .select('detail')
      .where('action', '=', 'consent')
      .where('outcome', '=', 'success')
      .orderBy('seq', 'desc')
      .executeTakeFirst();
    expect(row?.detail).toEqual({ version: 2 });
  });

  it('grants break-the-glass for a limited time, audits every access under it, and refuses it when not needed', async () => {
    const p = await patientWithRecords();
    const outsider = staff.outsider!;
    await denied(c.chart.readChart(outsider, p.id));
    const conflict = await c.chart
      .requestBreakGlass(staff.therapist!, p.id, {
        reasonCategory: 'emergency-treatment',
        reason: 'Unconscious on arrival, needs history.',
      })
      .catch((e: unknown) => e);
    expect(isCustosError(conflict, 'CUSTOS_ERR_CONFLICT')).toBe(true);
    await denied(
      c.chart.requestBreakGlass(staff.desk!, p.id, {
        reasonCategory: 'emergency-treatment',
        reason: 'Unconscious on arrival, needs history.',
      }),
    );
    const tooLong = await c.chart
      .requestBreakGlass(outsider, p.id, {
        reasonCategory: 'emergency-treatment',
        reason: 'Unconscious on arrival.',
        minutes: 481,
      })
      .catch((e: unknown) => e);
    expect(isCustosError(tooLong, 'CUSTOS_ERR_VALIDATION') && tooLong.field).toBe('minutes');

    const before = await lastSeq();
    const grant = await c.chart.requestBreakGlass(outsider, p.id, {
      reasonCategory: 'emergency-treatment',
      reason: 'Unconscious on arrival, needs history.',
      minutes: 30,
    });
    expect(grant.expiresAt.getTime() - grant.startsAt.getTime()).toBe(30 * 60_000);
    const chart = await c.chart.readChart(outsider, p.id);
    // Emergency access is to the chart, not to restricted or psychotherapy notes.
    expect(chart.records.map((r) => r.id)).toEqual([p.normal]);
    const [request, read] = await entries(before);
    expect(request).toMatchObject({
      action: 'break-glass',
      outcome: 'success',
      purpose: 'emergency',
      resource_id: grant.id,
    });
    expect(request?.detail).toMatchObject({ breakGlass: grant.id, reasonCategory: 'emergency-treatment' });
    // The free text is sealed: not in the entry, not in the grant row.
    expect(JSON.stringify(request)).not.toContain('Unconscious');
    const row = await c.database.db
      .selectFrom('break_glass_grants')
      .selectAll()
      .where('id', '=', grant.id)
      .executeTakeFirstOrThrow();
    expect(row.reason.toString('latin1')).not.toContain('Unconscious');
    expect(
      c.keyring
        .openSecret({ table: 'break_glass_grants', column: 'reason', row: grant.id, version: 0 }, row.reason)
        .toString(),
    ).toBe('Unconscious on arrival, needs history.');
    expect(read).toMatchObject({ action: 'read', outcome: 'success', purpose: 'emergency' });
    expect(read?.detail).toEqual({ breakGlass: grant.id });
    advance(31 * 60_000);
    await denied(c.chart.readChart(outsider, p.id));
  });

  it('lets break-the-glass override a consent denial for emergency treatment, and says so', async () => {
    const p = await patientWithRecords();
    await c.chart.setConsent(staff.desk!, p.id, 0, { denyUsers: [ids.therapist!] });
    await denied(c.chart.readChart(staff.therapist!, p.id));
    const grant = await c.chart.requestBreakGlass(staff.therapist!, p.id, {
      reasonCategory: 'emergency-treatment',
      reason: 'Collapsed in the waiting room.',
    });
    expect(grant.consentOverride).toBe(true);
    const before = await lastSeq();
    await c.chart.readChart(staff.therapist!, p.id);
    const [read] = await entries(before);
    expect(read?.detail).toEqual({ breakGlass: grant.id, consentOverride: true });
  });

  it("marks reads of a namesake's chart for the anomaly report, comparing blind indexes only", async () => {
    const family = 'Namesakia';
    const { id } = await c.chart.createPatient(
      system(c.practiceId),
      identity({ name: { given: ['N'], family } }),
      {
        careTeam: [ids.colleague!, ids.therapist!],
      },
    );
    await c.database.db
      .updateTable('users')
      .set({ family_index: c.keyring.blindIndex('family', 'namesakia') })
      .where('id', '=', ids.colleague!)
      .execute();
    const before = await lastSeq();
    await c.chart.readChart(staff.colleague!, id);
    await c.chart.readChart(staff.therapist!, id);
    const [mine, theirs] = await entries(before);
    expect(mine?.detail).toEqual({ namesake: true });
    expect(theirs?.detail).toBeNull();
    const flagged = (await anomalyReport(c.database.db, { practiceId: c.practiceId })).filter(
      (a) => a.kind === 'namesake',
    );
    expect(flagged.map((a) => a.seqs[0])).toEqual([String(mine?.seq)]);
  });

  it('flags restricted patients: explicit membership for every role, the privacy officer may flag', async () => {
    const { id } = await c.chart.createPatient(system(c.practiceId), identity(), {
      careTeam: [ids.therapist!],
    });
    expect((await c.chart.readPatient(staff.desk!, id)).id).toBe(id);
    await denied(c.chart.setRestricted(staff.desk!, id, true));
    await c.chart.setRestricted(staff.officer!, id, true);
    await denied(c.chart.readPatient(staff.desk!, id));
    await denied(c.chart.readChart(staff.billing!, id));
    const before = await lastSeq();
    await c.chart.readChart(staff.therapist!, id);
    const [read] = await entries(before);
    expect(read?.detail).toEqual({ restrictedPatient: true });
    // The privacy officer still cannot read it, but sees each access in the anomaly report.
    await denied(c.chart.readPatient(staff.officer!, id));
    const anomalies = await anomalyReport(c.database.db, { practiceId: c.practiceId });
    const flagged = anomalies.filter((a) => a.kind === 'restricted' && Number(a.seqs[0]) > Number(before));
    expect(flagged).toMatchObject([
      { kind: 'restricted', actorId: ids.therapist, action: 'read', resourceType: 'chart' },
    ]);
  });
});
